package builder

import (
	"strings"

	"github.com/seedbuild/seedbuild/labels"
)

// Paths inside a seed image (the layout is labels'), relative to its root
// as the layer writer wants them.
var (
	seedDir        = strings.TrimPrefix(labels.SeedDir, "/")
	kargsFile      = strings.TrimPrefix(labels.KargsFile, "/")
	unitName       = labels.ApplyEtcUnit
	unitDir        = "usr/lib/systemd/system"
	applyScript    = strings.TrimPrefix(labels.ApplyEtcScript, "/")
	etcStamp       = labels.EtcStamp
	deletionsName  = labels.DeletionsFile
	clusterInfoMan = labels.ClusterInfoFile
)

var applyEtcScript = `#!/bin/sh
# Lays the seed node's /etc state into /etc once, then leaves a stamp.
# Run by ` + unitName + `; seedbuild deploy does the same before reboot.
set -eu
seed=/` + seedDir + `
stamp=` + etcStamp + `
[ -e "$stamp" ] && exit 0
selinux=
if [ -e /sys/fs/selinux/enforce ] && command -v restorecon >/dev/null 2>&1; then
	selinux=1
fi
if [ -d "$seed/etc" ]; then
	cp -a "$seed/etc/." /etc/
	# cp kept the SELinux labels the files have where the seed keeps
	# them, under /usr, and gave /etc itself its folder's: on an SELinux
	# node they get /etc's.
	if [ -n "$selinux" ]; then
		{ echo /etc; (cd "$seed/etc" && find . -mindepth 1 -printf '/etc/%P\n'); } | restorecon -f -
	fi
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
if [ -n "$selinux" ]; then
	restorecon "$stamp"
fi
`

var applyEtcUnit = `[Unit]
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
