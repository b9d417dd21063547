package rampart_test

// This test keeps DESIGN.md's import rules. It reads the import lists of
// every non-test Go file in the module.

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/rampart-iot/rampart"

// Domain packages: never import transports or storage adapters.
var domain = []string{"secrets", "journal", "accounts", "pki", "devices", "safety", "firmware", "telemetry", "posture"}

// Transports and adapters that domain packages must not import.
var forbiddenForDomain = []string{"internal/httpapi", "internal/web", "internal/broker", "internal/gateway", "internal/store", "internal/app"}

func imports(t *testing.T) map[string][]string {
	t.Helper()
	pkgs := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			pkgs[dir] = append(pkgs[dir], p)
		}
		if _, ok := pkgs[dir]; !ok {
			pkgs[dir] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func isStd(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") }

// violations applies DESIGN.md's import rules to an import map.
func violations(pkgs map[string][]string) []string {
	var out []string
	for dir, imps := range pkgs {
		for _, imp := range imps {
			local, ours := strings.CutPrefix(imp, module+"/")
			switch {
			case dir == "api" || strings.HasPrefix(dir, "api/"):
				if !isStd(imp) {
					out = append(out, dir+" imports "+imp+": api/ uses only the standard library")
				}
			case dir == "sdk" || strings.HasPrefix(dir, "sdk/"):
				if ours && strings.HasPrefix(local, "internal/") {
					out = append(out, dir+" imports "+imp+": sdk/ never imports internal/")
				}
			}
			if ours && local == "internal/app" && !strings.HasPrefix(dir, "cmd/") {
				out = append(out, dir+" imports internal/app: only cmd/ may (it is the composition root)")
			}
			for _, d := range domain {
				if dir != "internal/"+d {
					continue
				}
				for _, bad := range forbiddenForDomain {
					if ours && (local == bad || strings.HasPrefix(local, bad+"/")) {
						out = append(out, "domain package "+dir+" imports "+imp+": domain packages never import transports or adapters; declare an interface instead")
					}
				}
			}
			if ours && strings.HasPrefix(local, "internal/testkit") {
				out = append(out, dir+" imports internal/testkit outside tests")
			}
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	pkgs := imports(t)
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages; the walk is broken", len(pkgs))
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestImportRulesCatchViolations proves the checker can fail: each
// fabricated violation must be reported.
func TestImportRulesCatchViolations(t *testing.T) {
	for dir, imp := range map[string]string{
		"internal/journal": module + "/internal/store/sqlite",
		"internal/secrets": module + "/internal/httpapi",
		"api":              "github.com/example/dep",
		"sdk":              module + "/internal/secrets",
		"internal/pki":     module + "/internal/app",
		"internal/broker":  module + "/internal/testkit",
	} {
		if got := violations(map[string][]string{dir: {imp}}); len(got) == 0 {
			t.Errorf("%s importing %s was not reported", dir, imp)
		}
	}
	if got := violations(map[string][]string{"internal/app": {module + "/internal/store/sqlite"}, "cmd/rampart": {module + "/internal/app"}}); len(got) != 0 {
		t.Errorf("allowed imports reported: %v", got)
	}
}
