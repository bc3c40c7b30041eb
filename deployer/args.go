package deployer

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The names of the actions' arguments (Step.Args). A plan is data, kept
// in journals and golden files as a JSON map; these constants are the one
// spelling of each key, and actionSpecs says which keys each action takes.
const (
	argSysroot     = "sysroot"
	argStateroot   = "stateroot"
	argRepo        = "repo"
	argRef         = "ref"
	argRoot        = "root"
	argVar         = "var"
	argFrom        = "from"
	argTo          = "to"
	argPath        = "path"
	argContent     = "content"
	argDeployment  = "deployment"
	argLabels      = "labels"
	argLabelsOf    = "labels-of"
	argLabelsTo    = "labels-to"
	argLinks       = "links"
	argSeedEtc     = "seed-etc"
	argImageVar    = "image-var"
	argImageRoot   = "image-root"
	argMountPoints = "mount-points"
	argKind        = "kind"
	argTarget      = "target"
	argImage       = "image"
	argStage       = "stage"
	argDir         = "dir"
	argRpmOstree   = "rpm-ostree"
	argList        = "list"
	argEtc         = "etc"
	argFile        = "file"
	// argKeep, set to keepExisting on a copy-tree step, has it copy only
	// what the destination lacks.
	argKeep      = "keep"
	keepExisting = "existing"
	// argPolicyRefreshed, "true" on the verify step, says a merge deploy
	// had ostree refresh the seed's SELinux policy in the new /etc.
	argPolicyRefreshed = "policy-refreshed"
	// argLabelPolicy, on a commit-tree step, names the tree whose SELinux
	// policy labels every file of the commit; argUsrEtcAsEtc, "true",
	// labels /usr/etc as the /etc it becomes (ostree's labelling epoch 1).
	argLabelPolicy = "label-policy"
	argUsrEtcAsEtc = "usr-etc-as-etc"
	// imageRefsArg, set to imageRefsNew on an undo of the bootc or
	// ostree-ext routes, has it delete the ostree/container/ refs the run
	// added.
	imageRefsArg = "image-refs"
	imageRefsNew = "remove-new"
)

// The placeholders a plan's steps hold, filled in by the executor: the
// first five from what the seed's unpack or mount made (see newExecutor),
// the others from the steps that capture or make them.
const (
	// phMount is the seed's root: unpacked onto the sysroot, or mounted.
	phMount = "{mount}"
	// phSeedLabels names the file that keeps the SELinux labels the seed's
	// /etc files have in its layers, for the /etc apply: where the seed was
	// unpacked, the commit relabels the files it takes over for where they
	// are in the image (/usr/lib/...); where it was pulled,
	// containers-storage left the labels out.
	phSeedLabels = "{seed-labels}"
	// phVarLabels names the file that keeps the SELinux labels of the
	// seed's /var in its layers, where it was pulled: bootc and ostree-ext
	// label /var by the image's policy, and the /var fill puts the seed
	// node's labels back.
	phVarLabels = "{var-labels}"
	// phSeedRepo is where a classic seed's ostree.tgz was extracted.
	phSeedRepo = "{seed-repo}"
	// phOriginFile names the file that holds the seed node's origin
	// (SeedFacts.Origin), written when the seed is unpacked or mounted.
	phOriginFile      = "{origin-file}"
	phCommit          = "{commit}"
	phStage           = "{stage}"
	phDeployment      = "{deployment}"
	phDeploymentIndex = "{deployment-index}"
	phMountPoints     = "{mount-points}"
	phChecksum        = "{checksum}"
	phBootEntry       = "{boot-entry}"
	// phStaged is "true" when the new deployment is staged.
	phStaged = "{staged}"
	// phAside is the cut-down commit a commit-tree step writes beside the
	// commit, for the copy made aside, when the step makes it.
	phAside = "{aside}"
)

// varName is the name a placeholder's value is stored under (Step.Capture,
// Step.Makes): the placeholder without its braces.
func varName(placeholder string) string { return strings.Trim(placeholder, "{}") }

// argSpec is what an action takes: the keys it needs, and those it may
// be given.
type argSpec struct{ required, optional []string }

// actionSpecs is every action's arguments, for the planner, the executor
// (which refuses a step that does not match) and the tests (which check
// every golden plan against it).
var actionSpecs = map[string]argSpec{
	ActionClearStateroot:  {required: []string{argSysroot, argStateroot}},
	ActionRemoveStateroot: {required: []string{argSysroot, argStateroot}, optional: []string{imageRefsArg}},
	ActionUndeploy:        {required: []string{argSysroot, argStateroot}, optional: []string{imageRefsArg}},
	ActionUndeployPath:    {required: []string{argSysroot, argDeployment}},
	ActionPrepareRoot:     {required: []string{argRoot}, optional: []string{argVar, argLabelsOf, argLabelsTo}},
	ActionCommitTree:      {required: []string{argRepo, argRef, argRoot}, optional: []string{argLabelPolicy, argUsrEtcAsEtc}},
	ActionRemoveCommit:    {required: []string{argRepo}, optional: []string{argRef}},
	ActionFindDeployment:  {required: []string{argSysroot, argStateroot}},
	ActionStageUsrEtc:     {required: []string{argRoot}},
	ActionUnstageUsrEtc:   {required: []string{argStage}},
	ActionTempDir:         {},
	ActionRemoveTempDir:   {required: []string{argDir}},
	ActionClassicCommit:   {required: []string{argRepo}, optional: []string{argRpmOstree}},
	ActionCopyTree:        {required: []string{argFrom, argTo}, optional: []string{argLabels, argLinks, argKeep}},
	ActionApplyDeletions:  {required: []string{argList, argEtc}},
	ActionWriteFile:       {required: []string{argPath}, optional: []string{argContent, argFrom}},
	ActionCopySeedFiles:   {required: []string{argFrom, argTo}},
	ActionUnpackArchive:   {required: []string{argFile, argTo}},
	ActionVerify: {required: []string{argSysroot, argStateroot, argKind, argDeployment},
		optional: []string{argImageRoot, argSeedEtc, argImageVar, argMountPoints, argPolicyRefreshed}},
	ActionBootcInstall: {required: []string{argImage, argTarget}},
	ActionMergeVar:     {required: []string{argVar}},
}

// checkArgs says what is wrong with an action's arguments: an unknown
// action, a key it does not take, or one it needs that is missing. Args
// whose value is "" count as missing where required: placeholders are
// checked once filled in.
func checkArgs(action string, args map[string]string) error {
	spec, ok := actionSpecs[action]
	if !ok {
		return fmt.Errorf("unknown action %q", action)
	}
	var unknown []string
	for k := range args {
		if !slices.Contains(spec.required, k) && !slices.Contains(spec.optional, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("action %s takes no argument %s (it takes %s)", action, strings.Join(unknown, ", "),
			strings.Join(append(append([]string{}, spec.required...), spec.optional...), ", "))
	}
	return requireArgs(args, spec.required...)
}
