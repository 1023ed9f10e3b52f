#!/usr/bin/env bash
# Renders the provider documentation with tfplugindocs, from the provider's schema (every attribute's
# MarkdownDescription), examples/ and templates/:
#
#   scripts/docs.sh [OUTDIR]      (default: docs)
#
# Into OUTDIR go index.md, resources/, data-sources/, functions/ and guides/. tfplugindocs removes only the
# files and directories it manages, so the other pages of docs/ (api/, control-plane.md, agent.md,
# sandbox*.md) stay. It builds the provider and asks ./bin/terraform for its schema: no network is needed
# once tfplugindocs is installed into ./bin.
set -euo pipefail

TFPLUGINDOCS_VERSION=0.24.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/bin"
out="${1:-$root/docs}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [[ ! -x "$bin/terraform" ]]; then
	echo "scripts/docs.sh: ./bin/terraform is missing: run make tools" >&2
	exit 1
fi
tfplugindocs="$bin/tfplugindocs-$TFPLUGINDOCS_VERSION"
if [[ ! -x "$tfplugindocs" ]]; then
	echo "installing tfplugindocs v$TFPLUGINDOCS_VERSION into ./bin" >&2
	tmpbin="$(mktemp -d)"
	GOFLAGS= GOBIN="$tmpbin" go install "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs@v$TFPLUGINDOCS_VERSION"
	mv "$tmpbin/tfplugindocs" "$tfplugindocs"
	rmdir "$tmpbin"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# tfplugindocs takes the output directory relative to the provider directory.
rel="$(realpath --relative-to="$root" "$out")"
# The local Terraform, with no CLI configuration of the caller's (TF_CLI_CONFIG_FILE may name a missing file).
: >"$work/terraformrc"
cd "$root"
PATH="$bin:$PATH" CHECKPOINT_DISABLE=1 TF_CLI_CONFIG_FILE="$work/terraformrc" GOFLAGS="${GOFLAGS:--mod=mod}" \
	"$tfplugindocs" generate \
	--provider-dir "$root" \
	--provider-name crmsync \
	--rendered-provider-name crmsync \
	--rendered-website-dir "$rel" \
	--website-temp-dir "$work/website" \
	--examples-dir examples \
	--website-source-dir templates >"$work/log" 2>&1 || {
	cat "$work/log" >&2
	exit 1
}
echo "docs rendered into $rel"
