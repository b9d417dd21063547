package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadOptions are the layers above the defaults.
type LoadOptions struct {
	// File is the YAML config file; empty means none.
	File string
	// Env is the environment in os.Environ form ("KEY=value"). Variables
	// not starting with RAMPART_ are ignored; an unknown RAMPART_* variable
	// is an error (RAMPART_CONFIG excepted, which cmd may use).
	Env []string
	// Overrides apply last, in order; cmd makes them from flags.
	Overrides []Override
}

// Override sets one setting from outside the file and the environment.
type Override struct {
	Key    string // dotted key, such as "https.addr"
	Value  string // as in the environment; lists are comma-separated
	Source string // for error messages, such as "flag --https-addr"
}

// Load builds a configuration from the defaults, then opts.File, then
// opts.Env, then opts.Overrides, and validates it. Every problem found is
// reported: the error joins one *FieldError per problem. An error reading
// the file is returned alone, wrapped.
func Load(opts LoadOptions) (*Config, error) {
	c := Default()
	var errs []error
	if opts.File != "" {
		data, err := readFile(opts.File)
		if err != nil {
			return nil, err
		}
		errs = append(errs, c.loadYAML(opts.File, data)...)
	}
	errs = append(errs, c.loadEnv(opts.Env)...)
	errs = append(errs, c.loadOverrides(opts.Overrides)...)
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// readFile reads a config file of at most maxFileBytes.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, &FieldError{File: name, Msg: "is not a regular file; name the YAML config file"}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, &FieldError{File: name, Msg: fmt.Sprintf("is larger than %d bytes (1 MiB), the limit for a config file; is it the right file?", maxFileBytes)}
	}
	return data, nil
}

// loadEnv applies the RAMPART_* variables of env; for a variable given more
// than once, the last wins.
func (c *Config) loadEnv(env []string) []error {
	vals := map[string]string{}
	var unknown []string
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "RAMPART_") || name == envConfigFile {
			continue
		}
		if !slices.ContainsFunc(fields, func(f field) bool { return f.env == name }) {
			if !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
			continue
		}
		vals[name] = val
	}
	var errs []error
	for _, name := range unknown {
		msg := "is not a Rampart setting"
		if s := suggest(name, envVars()); s != "" {
			msg += "; did you mean " + s + "?"
		} else {
			msg += "; unset it. Settings: " + strings.Join(envVars(), ", ")
		}
		errs = append(errs, &FieldError{Source: "environment " + name, Msg: msg})
	}
	for i := range fields {
		f := &fields[i]
		val, ok := vals[f.env]
		if !ok {
			continue
		}
		o := origin{source: "environment " + f.env}
		if err := f.set(c, val); err != nil {
			errs = append(errs, o.fieldError(f.key, err.Error()))
			continue
		}
		c.setOrigin(f.key, o)
	}
	return errs
}

// loadOverrides applies overrides in order.
func (c *Config) loadOverrides(overrides []Override) []error {
	var errs []error
	for _, ov := range overrides {
		src := ov.Source
		if src == "" {
			src = "override " + ov.Key
		}
		o := origin{source: src}
		f := lookup(ov.Key)
		if f == nil {
			errs = append(errs, o.fieldError(ov.Key, "is not a setting; settings: "+strings.Join(Keys(), ", ")))
			continue
		}
		if err := f.set(c, ov.Value); err != nil {
			errs = append(errs, o.fieldError(f.key, err.Error()))
			continue
		}
		c.setOrigin(f.key, o)
	}
	return errs
}

// loadYAML applies a config file's contents; name is used in messages.
func (c *Config) loadYAML(name string, data []byte) []error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err == io.EOF {
		return nil // empty, or comments only
	} else if err != nil {
		return []error{yamlError(name, err)}
	}
	var more yaml.Node
	if err := dec.Decode(&more); err != io.EOF {
		if err != nil {
			return []error{yamlError(name, err)}
		}
		return []error{&FieldError{File: name, Line: more.Line, Column: more.Column,
			Msg: "a second YAML document starts here; a config file holds one (remove the \"---\" and what follows, or merge them)"}}
	}
	if len(doc.Content) != 1 {
		return nil
	}
	l := loader{c: c, file: name}
	root := doc.Content[0]
	switch {
	case l.plain(root, "") != nil:
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		// "---" or "~" alone: no settings.
	case root.Kind != yaml.MappingNode:
		l.fail(root, "", "the file must be a mapping of settings (key: value), not "+describe(root))
	default:
		l.mapping(root, "")
	}
	return l.errs
}

// loader walks a file's node tree, setting values and remembering where
// each came from.
type loader struct {
	c    *Config
	file string
	errs []error
}

func (l *loader) pos(n *yaml.Node) origin {
	return origin{file: l.file, line: n.Line, column: n.Column}
}

func (l *loader) fail(n *yaml.Node, key, msg string) {
	l.errs = append(l.errs, l.pos(n).fieldError(key, msg))
}

// plain refuses anchors, aliases and unusual tags on n, which a config
// file has no need of and which can blow up a small file into a huge tree.
func (l *loader) plain(n *yaml.Node, key string) error {
	var msg string
	switch {
	case n.Kind == yaml.AliasNode:
		msg = "aliases (*" + n.Value + ") are not supported in a config file; write the value out"
	case n.Anchor != "":
		msg = "anchors (&" + n.Anchor + ") are not supported in a config file; remove it"
	case n.ShortTag() == "!!merge":
		msg = "merge keys (<<) are not supported in a config file; write the settings out"
	case !slices.Contains([]string{"!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq"}, n.ShortTag()):
		msg = "the YAML tag " + n.ShortTag() + " is not supported in a config file; write the value plainly"
	default:
		return nil
	}
	l.fail(n, key, msg)
	return errors.New(msg)
}

// mapping applies the settings in n, whose keys are under prefix.
func (l *loader) mapping(n *yaml.Node, prefix string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		parent := strings.TrimSuffix(prefix, ".")
		if l.plain(k, parent) != nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.fail(k, parent, "a key must be a name, not "+describe(k))
			continue
		}
		key := prefix + k.Value
		if line, dup := seen[k.Value]; dup {
			l.fail(k, key, fmt.Sprintf("is set twice (first on line %d); keep one", line))
			continue
		}
		seen[k.Value] = k.Line
		if f := lookup(key); f != nil {
			if l.plain(v, key) == nil {
				l.value(f, v)
			}
			continue
		}
		if isSection(key) {
			switch {
			case l.plain(v, key) != nil:
			case v.Kind == yaml.MappingNode:
				l.mapping(v, key+".")
			case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
				// A section whose settings are all commented out.
			default:
				l.fail(v, key, "must be a mapping of settings ("+strings.Join(childKeys(key+"."), ", ")+"), not "+describe(v))
			}
			continue
		}
		known := childKeys(prefix)
		msg := "unknown key"
		if s := suggest(k.Value, known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else {
			where := "at the top level"
			if parent != "" {
				where = "under " + parent
			}
			msg += "; the keys " + where + " are " + strings.Join(known, ", ")
		}
		l.fail(k, key, msg)
	}
}

// value applies one setting from its node.
func (l *loader) value(f *field, v *yaml.Node) {
	o := l.pos(v)
	isNull := v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null"
	if f.isList() {
		list := []string{}
		switch {
		case isNull:
		case v.Kind == yaml.SequenceNode:
			for _, item := range v.Content {
				if l.plain(item, f.key) != nil {
					return
				}
				if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
					l.fail(item, f.key, "a list item must be a single value, not "+describe(item))
					return
				}
				list = append(list, item.Value)
				o.items = append(o.items, l.pos(item))
			}
		default:
			l.fail(v, f.key, "must be a list, like [example.com, 192.0.2.1], not "+describe(v))
			return
		}
		*f.ptr(l.c).(*[]string) = list
		l.c.setOrigin(f.key, o)
		return
	}
	switch {
	case isNull:
		l.fail(v, f.key, fmt.Sprintf("has no value; write one (default: %q) or remove the key", f.example()))
		return
	case v.Kind != yaml.ScalarNode:
		l.fail(v, f.key, "must be a single value, not "+describe(v))
		return
	}
	if err := f.set(l.c, v.Value); err != nil {
		l.fail(v, f.key, err.Error())
		return
	}
	l.c.setOrigin(f.key, o)
}

// describe names a node's kind for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "an empty value"
	case "!!int", "!!float":
		return "a number (" + n.Value + ")"
	case "!!bool":
		return "a boolean (" + n.Value + ")"
	}
	return strconv.Quote(n.Value)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a YAML syntax error into a FieldError with its line.
func yamlError(name string, err error) error {
	msg := err.Error()
	fe := &FieldError{File: name}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	fe.Msg = "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	return fe
}
