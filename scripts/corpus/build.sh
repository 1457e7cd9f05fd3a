#!/bin/sh
# build.sh - rebuilds the project's public-domain training texts from Debian packages,
# on any Debian machine, without R and without any network but apt's:
#   corpus/austen.txt   Jane Austen's six novels (r-cran-janeaustenr), 4.0 MB
#   corpus/web.txt      the World English Bible, notes left out (sword-text-web), 5.0 MB
# each with its licence beside it (NAME-LICENSE.txt), checked against the sha256 sums in
# scripts/corpus/SHA256SUMS.
#
#   scripts/corpus/build.sh [-o DIR] [--root DIR]
#     -o DIR      where the texts go (default: corpus/ at the top of the source tree)
#     --root DIR  read the packages' files under DIR (unpacked with dpkg-deb -x, e.g.
#                 after `apt-get download r-cran-janeaustenr sword-text-web`, which
#                 needs no root) instead of installing them with
#                 scripts/install-deps.sh --corpus
# Exit 0 when both texts are written and match their sums, 1 otherwise.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out="$top/corpus"
root=""
while [ $# -gt 0 ]; do
    case $1 in
        -o) out=${2:?-o needs a folder}; shift 2 ;;
        --root) root=${2:?--root needs a folder}; shift 2 ;;
        -h|--help) sed -n '2,/^set/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$root" ]; then
    "$top/scripts/install-deps.sh" --corpus
    root=/
fi
python=python3
command -v "$python" >/dev/null 2>&1 || { echo "build.sh: python3 not found" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$python" "$here/extract.py" austen "$root" "$tmp/austen.txt"
"$python" "$here/extract.py" web "$root" "$tmp/web.txt"
(cd "$tmp" && sha256sum -c --quiet "$here/SHA256SUMS") || {
    echo "build.sh: the texts do not match scripts/corpus/SHA256SUMS (another version of" \
         "the packages?); nothing written to $out" >&2
    exit 1
}

{
    echo "Jane Austen's novels Sense and Sensibility, Pride and Prejudice, Mansfield Park,"
    echo "Emma, Northanger Abbey and Persuasion (1811-1818) are in the public domain."
    echo "austen.txt is their text as the R package janeaustenr ships it (Debian package"
    echo "r-cran-janeaustenr, from Project Gutenberg's editions), the lines of each novel"
    echo "joined by line feeds. The package's own copyright file follows."
    echo
    cat "$root/usr/share/doc/r-cran-janeaustenr/copyright"
} > "$tmp/austen-LICENSE.txt"
{
    echo "web.txt is the text of the World English Bible with Deuterocanon, in the public"
    echo "domain, as the Debian package sword-text-web ships it (SWORD module engWEB2015eb),"
    echo "with its markup and its footnotes left out. \"World English Bible\" is a trademark"
    echo "of eBible.org, which asks that a changed text not be called by that name. The"
    echo "module's licence line and the package's copyright file follow."
    echo
    grep -i '^DistributionLicense' "$root/usr/share/sword/mods.d/engWEB2015eb.conf" || true
    echo
    cat "$root/usr/share/doc/sword-text-web/copyright"
} > "$tmp/web-LICENSE.txt"
for f in austen.txt austen-LICENSE.txt web.txt web-LICENSE.txt; do
    mv "$tmp/$f" "$out/$f"
done
echo "build.sh: wrote $out/austen.txt and $out/web.txt (checksums match) with their licences"
