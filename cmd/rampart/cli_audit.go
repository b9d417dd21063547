package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rampart-iot/rampart/internal/app"
)

const auditUsage = `  audit            audit the fleet and the hub (needs 'rampart login'); --report json|html [--out FILE] writes the compliance report
`

// runAudit handles `rampart audit`.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rampart audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	session := fs.String("session", app.DefaultSessionFile(), "session file from 'rampart login' (0600)")
	report := fs.String("report", "", "write the compliance report: json or html")
	out := fs.String("out", "-", "file for the report (- for standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see 'rampart audit -h'", fs.Arg(0))
	}
	w := stdout
	if *out != "-" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return app.AuditCommand(ctx, *session, *report, w)
}
