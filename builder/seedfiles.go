package builder

// Paths inside a seed image.
const (
	seedDir        = "usr/lib/openshift/seed"
	kargsFile      = "usr/lib/bootc/kargs.d/50-seed.toml"
	unitName       = "seedbuild-apply-etc.service"
	unitDir        = "usr/lib/systemd/system"
	applyScript    = seedDir + "/apply-etc"
	etcStamp       = "/etc/.seedbuild-etc-applied"
	deletionsName  = "etc.deletions"
	clusterInfoMan = "manifest.json"
)

const applyEtcScript = `#!/bin/sh
# Lays the seed node's /etc state into /etc once, then leaves a stamp.
# Run by ` + unitName + `; seedbuild deploy does the same before reboot.
set -eu
seed=/` + seedDir + `
stamp=` + etcStamp + `
[ -e "$stamp" ] && exit 0
if [ -d "$seed/etc" ]; then
	cp -a "$seed/etc/." /etc/
fi
if [ -f "$seed/` + deletionsName + `" ]; then
	while IFS= read -r p; do
		case "$p" in
		*/../* | */..) ;;
		/etc/?*) rm -rf -- "$p" ;;
		esac
	done <"$seed/` + deletionsName + `"
fi
touch "$stamp"
`

const applyEtcUnit = `[Unit]
Description=Apply the seed node's /etc state (seedbuild)
Documentation=https://github.com/seedbuild/seedbuild
DefaultDependencies=no
After=local-fs.target
Before=crio.service kubelet.service
ConditionPathExists=!` + etcStamp + `

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/` + applyScript + `

[Install]
WantedBy=multi-user.target
`
