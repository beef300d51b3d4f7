#!/usr/bin/env bash
# install-ort.sh [DEST] — install the ONNX Runtime shared library that cocoflow's
# models/runtime/ort package loads (github.com/yalue/onnxruntime_go needs ORT >= 1.24).
#
# Debian ships no libonnxruntime, so the library is taken from the pinned npm
# package onnxruntime-node@1.30.0: `npm pack` downloads the tarball (npm checks
# its registry integrity hash; no install scripts run), tar extracts only
# package/bin/napi-v6/linux/x64/libonnxruntime.so.1, and its sha256 is checked
# against the value pinned below before it is copied into DEST.
#
#   DEST      install folder, default <repo>/.cache/ort
#   NPM       npm command to use, default npm
#
# Idempotent: when DEST already holds the library with the pinned sha256,
# nothing is downloaded. Progress goes to stderr; the last line on stdout is
# the absolute path of the installed library. Linux x86_64 only.
set -euo pipefail

readonly ORT_PACKAGE="onnxruntime-node@1.30.0"
readonly ORT_TARBALL="onnxruntime-node-1.30.0.tgz"
readonly ORT_DIR="package/bin/napi-v6/linux/x64"
readonly ORT_LIB="libonnxruntime.so.1"
readonly ORT_SHA256="ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"
# Execution-provider helper that CUDA/TensorRT providers need beside the
# library; onnxruntime-node 1.30.0 does not ship it in the tarball (its
# postinstall script fetches GPU providers from NuGet), so it is copied only
# when a tarball has it.
readonly ORT_PROVIDERS_SHARED="libonnxruntime_providers_shared.so"

die() {
	printf 'install-ort.sh: %s\n' "$*" >&2
	exit 1
}

log() {
	printf 'install-ort.sh: %s\n' "$*" >&2
}

sha256_of() {
	sha256sum "$1" | cut -d' ' -f1
}

os="$(uname -s)"
arch="$(uname -m)"
if [[ "$os" != "Linux" || "$arch" != "x86_64" ]]; then
	die "unsupported platform ${os}/${arch}: only Linux x86_64 is supported; install ONNX Runtime >= 1.24 yourself and set COCOFLOW_ORT_LIB"
fi
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found: install coreutils"
command -v tar >/dev/null 2>&1 || die "tar not found: install tar"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd "${script_dir}/.." && pwd -P)"
dest="${1:-${repo_root}/.cache/ort}"
npm_cmd="${NPM:-npm}"

mkdir -p "$dest" || die "cannot create install folder ${dest}"
dest="$(cd "$dest" && pwd -P)" || die "cannot enter install folder ${dest}"
target="${dest}/${ORT_LIB}"

if [[ -f "$target" ]]; then
	have="$(sha256_of "$target")" || die "cannot read ${target}"
	if [[ "$have" == "$ORT_SHA256" ]]; then
		log "${target} already installed (sha256 ok)"
		printf '%s\n' "$target"
		exit 0
	fi
	log "${target} has sha256 ${have}, want ${ORT_SHA256}: reinstalling"
fi

command -v "$npm_cmd" >/dev/null 2>&1 ||
	die "npm not found (${npm_cmd}): install Node.js and npm to fetch ${ORT_PACKAGE}, or install ONNX Runtime >= 1.24 yourself and set COCOFLOW_ORT_LIB"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/install-ort.XXXXXX")" || die "cannot create a temporary folder"
cleanup() {
	rm -rf -- "$tmp"
}
trap cleanup EXIT

log "fetching ${ORT_PACKAGE} with npm pack (about 110 MB, install scripts disabled)"
(cd "$tmp" && "$npm_cmd" pack "$ORT_PACKAGE" --ignore-scripts --silent >&2) ||
	die "npm pack ${ORT_PACKAGE} failed (is the npm registry reachable?)"
tarball="${tmp}/${ORT_TARBALL}"
[[ -f "$tarball" ]] || die "npm pack did not produce ${ORT_TARBALL} in ${tmp}"

members="$(tar -tzf "$tarball")" || die "cannot list ${ORT_TARBALL}: not a gzip tar archive"
grep -qx "${ORT_DIR}/${ORT_LIB}" <<<"$members" ||
	die "${ORT_TARBALL} has no ${ORT_DIR}/${ORT_LIB}"
extract=("${ORT_DIR}/${ORT_LIB}")
if grep -qx "${ORT_DIR}/${ORT_PROVIDERS_SHARED}" <<<"$members"; then
	extract+=("${ORT_DIR}/${ORT_PROVIDERS_SHARED}")
fi
others="$(grep -E "^${ORT_DIR}/libonnxruntime_providers_" <<<"$members" || true)"
if [[ -n "$others" ]]; then
	log "provider libraries in the tarball: $(tr '\n' ' ' <<<"$others")"
else
	log "the tarball ships no execution-provider libraries (CPU only unless you add them)"
fi

tar -xzf "$tarball" -C "$tmp" "${extract[@]}" || die "cannot extract ${ORT_LIB} from ${ORT_TARBALL}"
got="$(sha256_of "${tmp}/${ORT_DIR}/${ORT_LIB}")" || die "cannot hash the extracted ${ORT_LIB}"
[[ "$got" == "$ORT_SHA256" ]] ||
	die "checksum mismatch for ${ORT_LIB} from ${ORT_PACKAGE}: want sha256 ${ORT_SHA256}, got ${got}"

for member in "${extract[@]}"; do
	name="$(basename "$member")"
	cp -- "${tmp}/${member}" "${dest}/.${name}.partial" || die "cannot write ${dest}/.${name}.partial"
	chmod 0755 "${dest}/.${name}.partial"
	mv -f -- "${dest}/.${name}.partial" "${dest}/${name}" || die "cannot move ${name} into ${dest}"
	log "installed ${dest}/${name}"
done
printf '%s\n' "$target"
