#!/usr/bin/env bash
# make release-check: what a tagged release does (.github/workflows/release.yml), on this machine, without
# publishing anything:
#
#   1. goreleaser check on .goreleaser.yml;
#   2. goreleaser release --snapshot --clean: every provider and crmsync build, the archives, the SBOMs, the
#      registry manifest and SHA256SUMS into dist/, SHA256SUMS signed with a throwaway GPG key generated here
#      (the real release signs with the key registered with the Terraform Registry);
#   3. checks of the result: the signature verifies, every checksum matches, each provider zip holds exactly
#      terraform-provider-crmsync_vVERSION and is named as the registry expects, each crmsync archive holds the
#      crmsync binary and no provider, every binary has its SBOM, the manifest is the repository's.
#
# goreleaser and cyclonedx-gomod are taken from PATH (the Makefile puts ./bin first).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
project=terraform-provider-crmsync

fail() {
	echo "release-check: $*" >&2
	exit 1
}

for tool in goreleaser cyclonedx-gomod gpg sha256sum unzip tar; do
	command -v "$tool" >/dev/null || fail "$tool is not on PATH (make release-check installs goreleaser and cyclonedx-gomod into ./bin)"
done

echo "==> goreleaser check"
goreleaser check

echo "==> throwaway GPG key"
GNUPGHOME="$(mktemp -d)"
export GNUPGHOME
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
# RSA: the key type the Terraform Registry accepts for provider signing keys.
gpg --batch --quiet --passphrase '' --quick-gen-key "crmsync release-check <release-check@crmsync.invalid>" rsa3072 sign 1d
GPG_FINGERPRINT="$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')"
[[ -n "$GPG_FINGERPRINT" ]] || fail "no fingerprint for the generated key"
export GPG_FINGERPRINT

# The container image (dockers_v2) needs a Docker daemon with buildx: skipped unless CRMSYNC_DOCKER=1.
skip=(--skip=docker)
if [[ "${CRMSYNC_DOCKER:-}" == 1 ]]; then skip=(); fi
echo "==> goreleaser release --snapshot --clean ${skip[*]}"
start=$SECONDS
goreleaser release --snapshot --clean "${skip[@]}"
echo "    built in $((SECONDS - start))s"

echo "==> checking dist/"
version="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' dist/metadata.json | head -n 1)"
[[ -n "$version" ]] || fail "no version in dist/metadata.json"
sums="dist/${project}_${version}_SHA256SUMS"
[[ -f "$sums" ]] || fail "$sums is missing"
[[ -f "$sums.sig" ]] || fail "$sums.sig is missing: SHA256SUMS was not signed"
gpg --batch --quiet --verify "$sums.sig" "$sums" 2>/dev/null || fail "the signature of $sums does not verify"
manifest="${project}_${version}_manifest.json"
# The manifest is uploaded from terraform-registry-manifest.json under its release name at publish time.
grep -qx "$(sha256sum <terraform-registry-manifest.json | cut -d' ' -f1)  $manifest" "$sums" ||
	fail "$sums has no checksum of terraform-registry-manifest.json as $manifest"
(cd dist && grep -v "  $manifest\$" "$(basename "$sums")" | sha256sum --quiet --strict -c -) || fail "a checksum in $sums does not match"

providers=0
for zip in dist/${project}_"${version}"_*.zip; do
	name="$(basename "$zip")"
	[[ "$name" =~ ^${project}_${version//./\\.}_(freebsd|windows|linux|darwin)_(amd64|386|arm|arm64)\.zip$ ]] ||
		fail "$name is not named terraform-provider-crmsync_VERSION_OS_ARCH.zip"
	want="${project}_v${version}"
	[[ "${BASH_REMATCH[1]}" == windows ]] && want="$want.exe"
	got="$(unzip -Z1 "$zip")"
	[[ "$got" == "$want" ]] || fail "$name holds [$got], not only $want"
	grep -q "  $name\$" "$sums" || fail "$name is not in $sums"
	providers=$((providers + 1))
done
# 4 OSes x 4 architectures, less darwin/386 and windows/arm (ignored) and darwin/arm (no such Go port).
[[ $providers -eq 13 ]] || fail "$providers provider zips, want 13"

runtimes=0
for archive in dist/crmsync_"${version}"_*; do
	name="$(basename "$archive")"
	case "$name" in
	*.tar.gz) files="$(tar -tzf "$archive")" ;;
	*.zip) files="$(unzip -Z1 "$archive")" ;;
	*) continue ;;
	esac
	grep -qx 'crmsync\(\.exe\)\?' <<<"$files" || fail "$name does not hold the crmsync binary"
	! grep -q "$project" <<<"$files" || fail "$name holds the provider"
	grep -qx LICENSE <<<"$files" || fail "$name does not hold LICENSE"
	grep -q "  $name\$" "$sums" || fail "$name is not in $sums"
	runtimes=$((runtimes + 1))
done
[[ $runtimes -eq 6 ]] || fail "$runtimes crmsync archives, want 6"

sboms=0
for sbom in dist/*.cdx.json; do
	grep -q '"bomFormat": *"CycloneDX"' "$sbom" || fail "$sbom is not a CycloneDX document"
	grep -q "  $(basename "$sbom")\$" "$sums" || fail "$(basename "$sbom") is not in $sums"
	sboms=$((sboms + 1))
done
[[ $sboms -eq $((providers + runtimes)) ]] || fail "$sboms SBOMs for $((providers + runtimes)) binaries"

echo "release-check: $version: $providers provider zips, $runtimes crmsync archives, $sboms SBOMs, SHA256SUMS signed and verified (dist/)"
