#!/usr/bin/env bash
# Builds internal/accounts/blocklist.txt.gz, the password blocklist shipped
# inside the binary. Run from anywhere: scripts/blocklist/build.sh
#
# Sources (all fetched with `npm pack`, pinned, MIT-licensed packages):
#   @zxcvbn-ts/language-common@4.1.3  src/passwords.json  ranked common/breached passwords (MIT)
#                                     src/diceware.json   EFF-style diceware words (MIT)
#   @zxcvbn-ts/language-en@4.1.1      src/commonWords.json  (MIT package; data derived from
#                                       OpenSubtitles 2024 via OPUS, ODC-BY: attribution kept in
#                                       internal/accounts/blocklist.NOTICE.txt)
#                                     src/wikipedia.json, src/lastnames.json, src/firstnames.json (MIT)
# Every entry is NFKC-normalised and lower-cased exactly as the hub does at
# check time, de-duplicated, sorted, and gzip-compressed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent @zxcvbn-ts/language-common@4.1.3 @zxcvbn-ts/language-en@4.1.1 >/dev/null
for f in *.tgz; do mkdir -p "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
c=zxcvbn-ts-language-common-4.1.3/package
e=zxcvbn-ts-language-en-4.1.1/package
cd "$root"
go run ./scripts/blocklist -out internal/accounts/blocklist.txt.gz \
  "$tmp/$c/src/passwords.json" "$tmp/$c/src/diceware.json" \
  "$tmp/$e/src/commonWords.json" "$tmp/$e/src/wikipedia.json" \
  "$tmp/$e/src/lastnames.json" "$tmp/$e/src/firstnames.json"
cp "$tmp/$c/LICENSE.txt" internal/accounts/blocklist.LICENSE.txt
cp "$tmp/$e/NOTICE.md" internal/accounts/blocklist.NOTICE.txt
