package config

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one setting. Load and Validate return them
// joined (errors.Join), one per problem.
type FieldError struct {
	// File, Line and Column locate a value that came from the config file
	// (Line and Column count from 1; 0 means unknown).
	File         string
	Line, Column int
	// Field is the dotted key, such as "https.addr" or "https.hostnames[1]";
	// empty for problems with the file as a whole.
	Field string
	// Source names a value's origin outside the file, such as "environment
	// RAMPART_HTTPS_ADDR" or "flag --https-addr".
	Source string
	// Msg says what is wrong and what to do.
	Msg string
}

// Error reads "FILE:LINE:COL: FIELD: MSG" for a value from the file and
// "SOURCE: FIELD: MSG" for one from elsewhere.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "":
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	case e.Source != "":
		b.WriteString(e.Source + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// origin is where a value came from: a position in a file, or a named source.
type origin struct {
	file         string
	line, column int
	source       string
	// items are the positions of a list's elements in the file.
	items []origin
}

func (o origin) String() string {
	if o.file != "" {
		return fmt.Sprintf("file %s:%d:%d", o.file, o.line, o.column)
	}
	return o.source
}

// fieldError returns a FieldError for field, placed at o.
func (o origin) fieldError(field, msg string) *FieldError {
	return &FieldError{File: o.file, Line: o.line, Column: o.column, Field: field, Source: o.source, Msg: msg}
}
