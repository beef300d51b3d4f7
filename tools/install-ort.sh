#!/usr/bin/env bash
# install-ort.sh [--gpu] [DEST] — install the ONNX Runtime shared library that cocoflow's
# models/runtime/ort package loads (github.com/yalue/onnxruntime_go needs ORT >= 1.24).
#
# Debian ships no libonnxruntime, so the library is taken from pinned npm packages: `npm pack`
# downloads a tarball (npm checks its registry integrity hash; no install scripts run), tar
# extracts only the files named below, and each one's sha256 is checked against the value
# pinned here before it is copied into DEST.
#
#   (default)  CPU: onnxruntime-node@1.30.0's package/bin/napi-v6/linux/x64/libonnxruntime.so.1,
#              into <repo>/.cache/ort.
#   --gpu      CUDA and TensorRT: ONNX Runtime 1.29.0, into <repo>/.cache/ort-gpu. The core
#              library comes from onnxruntime-node@1.29.0 (built with the provider bridge; its
#              own postinstall fetches the GPU providers from NuGet, which cocoflow does not
#              run), the providers (libonnxruntime_providers_{shared,cuda,tensorrt}.so, CUDA 13)
#              from com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9, built from the same ORT
#              release. They need the CUDA 13 runtime (cudart, cuBLAS, cuRAND), cuDNN 9 and, for
#              TensorRT, TensorRT 10 on the loader's path. Use it with
#              COCOFLOW_ORT_LIB=<repo>/.cache/ort-gpu/libonnxruntime.so.1 and
#              COCOFLOW_ORT_PROVIDERS=cuda,cpu.
#   DEST       install folder (default above)
#   NPM        npm command to use, default npm
#
# Idempotent: when DEST already holds the files with the pinned sha256, nothing is downloaded.
# Progress goes to stderr; the last line on stdout is the absolute path of the installed core
# library. Linux x86_64 only.
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

# The GPU variant (--gpu): ONNX Runtime 1.29.0 core and providers of the same release.
readonly GPU_CORE_PACKAGE="onnxruntime-node@1.29.0"
readonly GPU_CORE_TARBALL="onnxruntime-node-1.29.0.tgz"
readonly GPU_CORE_SHA256="89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d"
readonly GPU_EP_PACKAGE="com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9"
readonly GPU_EP_TARBALL="com.github.asus4.onnxruntime.linux-x64-gpu-0.4.9.tgz"
readonly GPU_EP_DIR="package/Plugins/Linux/x64"
readonly -A GPU_EP_SHA256=(
	[libonnxruntime_providers_shared.so]="c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772"
	[libonnxruntime_providers_cuda.so]="56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037"
	[libonnxruntime_providers_tensorrt.so]="ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320"
)

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

gpu=0
args=()
for a in "$@"; do
	case "$a" in
	--gpu) gpu=1 ;;
	-*) die "unknown option ${a}: usage install-ort.sh [--gpu] [DEST]" ;;
	*) args+=("$a") ;;
	esac
done
((${#args[@]} <= 1)) || die "too many arguments: usage install-ort.sh [--gpu] [DEST]"

os="$(uname -s)"
arch="$(uname -m)"
if [[ "$os" != "Linux" || "$arch" != "x86_64" ]]; then
	die "unsupported platform ${os}/${arch}: only Linux x86_64 is supported; install ONNX Runtime >= 1.24 yourself and set COCOFLOW_ORT_LIB"
fi
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found: install coreutils"
command -v tar >/dev/null 2>&1 || die "tar not found: install tar"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo_root="$(cd "${script_dir}/.." && pwd -P)"
default_dest="${repo_root}/.cache/ort"
((gpu)) && default_dest="${repo_root}/.cache/ort-gpu"
dest="${args[0]:-${default_dest}}"
npm_cmd="${NPM:-npm}"

mkdir -p "$dest" || die "cannot create install folder ${dest}"
dest="$(cd "$dest" && pwd -P)" || die "cannot enter install folder ${dest}"
target="${dest}/${ORT_LIB}"

# has_pinned FILE SHA: whether DEST holds FILE with that sha256.
has_pinned() {
	[[ -f "${dest}/$1" ]] && [[ "$(sha256_of "${dest}/$1")" == "$2" ]]
}

# install_member TMP MEMBER: copy an extracted member into DEST atomically.
install_member() {
	local name
	name="$(basename "$2")"
	cp -- "$1/$2" "${dest}/.${name}.partial" || die "cannot write ${dest}/.${name}.partial"
	chmod 0755 "${dest}/.${name}.partial"
	mv -f -- "${dest}/.${name}.partial" "${dest}/${name}" || die "cannot move ${name} into ${dest}"
	log "installed ${dest}/${name}"
}

# pack PACKAGE TARBALL TMP: npm pack PACKAGE into TMP and check it produced TARBALL.
pack() {
	log "fetching $1 with npm pack (install scripts disabled)"
	(cd "$3" && "$npm_cmd" pack "$1" --ignore-scripts --silent >&2) ||
		die "npm pack $1 failed (is the npm registry reachable?)"
	[[ -f "$3/$2" ]] || die "npm pack did not produce $2 in $3"
}

# extract TARBALL TMP MEMBER SHA: extract one member and check its sha256.
extract() {
	local members got
	members="$(tar -tzf "$2/$1")" || die "cannot list $1: not a gzip tar archive"
	grep -qx "$3" <<<"$members" || die "$1 has no $3"
	tar -xzf "$2/$1" -C "$2" "$3" || die "cannot extract $(basename "$3") from $1"
	got="$(sha256_of "$2/$3")" || die "cannot hash the extracted $(basename "$3")"
	[[ "$got" == "$4" ]] ||
		die "checksum mismatch for $(basename "$3") from $1: want sha256 $4, got ${got}"
}

if ((gpu)); then
	complete=1
	has_pinned "$ORT_LIB" "$GPU_CORE_SHA256" || complete=0
	for name in "${!GPU_EP_SHA256[@]}"; do
		has_pinned "$name" "${GPU_EP_SHA256[$name]}" || complete=0
	done
	if ((complete)); then
		log "${dest} already holds ONNX Runtime 1.29.0 with its CUDA and TensorRT providers (sha256 ok)"
		printf '%s\n' "$target"
		exit 0
	fi
	command -v "$npm_cmd" >/dev/null 2>&1 ||
		die "npm not found (${npm_cmd}): install Node.js and npm to fetch ${GPU_CORE_PACKAGE} and ${GPU_EP_PACKAGE}"
	tmp="$(mktemp -d "${TMPDIR:-/tmp}/install-ort.XXXXXX")" || die "cannot create a temporary folder"
	trap 'rm -rf -- "$tmp"' EXIT
	pack "$GPU_CORE_PACKAGE" "$GPU_CORE_TARBALL" "$tmp"
	extract "$GPU_CORE_TARBALL" "$tmp" "${ORT_DIR}/${ORT_LIB}" "$GPU_CORE_SHA256"
	pack "$GPU_EP_PACKAGE" "$GPU_EP_TARBALL" "$tmp"
	for name in "${!GPU_EP_SHA256[@]}"; do
		extract "$GPU_EP_TARBALL" "$tmp" "${GPU_EP_DIR}/${name}" "${GPU_EP_SHA256[$name]}"
	done
	install_member "$tmp" "${ORT_DIR}/${ORT_LIB}"
	for name in "${!GPU_EP_SHA256[@]}"; do
		install_member "$tmp" "${GPU_EP_DIR}/${name}"
	done
	log "the providers need CUDA 13 (cudart, cuBLAS, cuRAND), cuDNN 9 and for TensorRT TensorRT 10 on the loader path"
	printf '%s\n' "$target"
	exit 0
fi

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
	log "the tarball ships no execution-provider libraries (CPU only; see --gpu)"
fi

tar -xzf "$tarball" -C "$tmp" "${extract[@]}" || die "cannot extract ${ORT_LIB} from ${ORT_TARBALL}"
got="$(sha256_of "${tmp}/${ORT_DIR}/${ORT_LIB}")" || die "cannot hash the extracted ${ORT_LIB}"
[[ "$got" == "$ORT_SHA256" ]] ||
	die "checksum mismatch for ${ORT_LIB} from ${ORT_PACKAGE}: want sha256 ${ORT_SHA256}, got ${got}"

for member in "${extract[@]}"; do
	install_member "$tmp" "$member"
done
printf '%s\n' "$target"
