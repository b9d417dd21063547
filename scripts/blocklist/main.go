// Command blocklist builds the password blocklist that internal/accounts
// embeds, from JSON arrays of strings (see build.sh for the sources and
// their licences). Each entry is normalised exactly as accounts normalises a
// password before the check (NFKC, lower case), then the list is
// de-duplicated, sorted and written gzip-compressed, one entry a line.
package main

import (
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
)

func main() {
	out := flag.String("out", "", "gzip file to write")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: blocklist -out FILE.gz SOURCE.json...")
		os.Exit(2)
	}
	seen := map[string]bool{}
	for _, path := range flag.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		var words []string
		if err := json.Unmarshal(b, &words); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		for _, w := range words {
			w = strings.ToLower(norm.NFKC.String(strings.TrimSpace(w)))
			if w != "" && !strings.ContainsAny(w, "\n\r") {
				seen[w] = true
			}
		}
	}
	list := make([]string, 0, len(seen))
	for w := range seen {
		list = append(list, w)
	}
	slices.Sort(list)
	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if _, err := zw.Write([]byte(strings.Join(list, "\n") + "\n")); err != nil {
		fail(err)
	}
	if err := zw.Close(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("%s: %d entries\n", *out, len(list))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "blocklist:", err)
	os.Exit(1)
}
