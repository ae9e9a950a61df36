# Sourced by the other scripts: the project's configuration, the same the controller reads.
# CCC_* variables come from the environment or from controller.env (CCC_CONFIG_FILE).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
config=${CCC_CONFIG_FILE:-$here/controller.env}
if [ -f "$config" ]; then set -a; . "$config"; set +a; fi
# An external PBX is configured when CCC_ARI_URL is set; otherwise the local Asterisk is used.
if [ -n "${CCC_ARI_URL:-}" ]; then export CCC_EXTERNAL_PBX=1; else unset CCC_EXTERNAL_PBX; fi
