package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/app"
	"github.com/rampart-iot/rampart/internal/firmware"
	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

const firmwareUsage = `
firmware signing (offline; the hub never holds these keys):
  firmware keygen --out K --vendor V [--passphrase-file F]
      new Ed25519 signing key: K (sealed with the passphrase, argon2id + AES-256-GCM, 0600) and K.pub
  firmware root --out R --version N --root-keys A.pub[,B.pub] --root-threshold 1
                --firmware-keys C.pub[,D.pub] --firmware-threshold 1 [--expires 8760h]
      writes an unsigned root; sign it with 'firmware cosign' (a rotation: old threshold AND new)
  firmware sign --key K --model M --version V --in image.bin [--sequence N] [--expires 2160h] [--out image.bin.manifest]
      writes a signed manifest (sequence defaults to the current Unix time, so it only grows)
  firmware cosign --key K --in FILE     adds a signature to a root or manifest (threshold k of n)
  firmware verify --root R --manifest M [--in image.bin]
  The passphrase comes from a 0600 file (--passphrase-file) or the first line of standard input, never a flag.
`

func runFirmware(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage:%s", firmwareUsage)
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("rampart firmware "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	passFile := fs.String("passphrase-file", "", "file (0600) holding the key's passphrase; default: first line of standard input")
	passphrase := func() ([]byte, error) {
		if *passFile == "" {
			fmt.Fprint(stderr, "passphrase (read from standard input): ")
		}
		p, err := app.ReadSecret(*passFile, stdin)
		if err != nil {
			return nil, err
		}
		return []byte(p.Reveal()), nil
	}
	loadKey := func(path string) (ed25519.PrivateKey, string, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, "", err
		}
		pass, err := passphrase()
		if err != nil {
			return nil, "", err
		}
		k, vendor, err := firmware.OpenKey(data, pass)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		return k, vendor, nil
	}
	switch verb {
	case "keygen":
		out := fs.String("out", "", "private key file to create (the public key goes to FILE.pub)")
		vendor := fs.String("vendor", "", "vendor name written into manifests this key signs")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *out == "" || *vendor == "" || fs.NArg() > 0 {
			return errors.New("usage: rampart firmware keygen --out K --vendor V [--passphrase-file F]")
		}
		pass, err := passphrase()
		if err != nil {
			return err
		}
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		sealed, err := firmware.SealKey(priv, *vendor, pass, firmware.DefaultKDF, rand.Reader)
		if err != nil {
			return err
		}
		if err := writeNew(*out, sealed, 0o600); err != nil {
			return err
		}
		pubJSON, _ := json.MarshalIndent(struct {
			KeyID  string    `json:"key_id"`
			Key    sdkfw.Key `json:"key"`
			Vendor string    `json:"vendor"`
		}{sdkfw.KeyID(pub), sdkfw.KeyFor(pub), *vendor}, "", "  ")
		if err := writeNew(*out+".pub", append(pubJSON, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key %s\nprivate (sealed): %s\npublic: %s.pub\n", sdkfw.KeyID(pub), *out, *out)
		return nil
	case "root":
		out := fs.String("out", "", "root file to write")
		version := fs.Uint64("version", 1, "root version (a rotation is the current version + 1)")
		rootKeys := fs.String("root-keys", "", "comma-separated .pub files of the root role")
		rootK := fs.Int("root-threshold", 1, "signatures needed on the next root")
		fwKeys := fs.String("firmware-keys", "", "comma-separated .pub files of the firmware role")
		fwK := fs.Int("firmware-threshold", 1, "signatures needed on a manifest")
		expires := fs.Duration("expires", 365*24*time.Hour, "how long the root is valid")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *out == "" || *rootKeys == "" || *fwKeys == "" || fs.NArg() > 0 {
			return errors.New("usage: rampart firmware root --out R --version N --root-keys A.pub --firmware-keys B.pub [--root-threshold K] [--firmware-threshold K]")
		}
		r := sdkfw.Root{Version: *version, Expires: time.Now().Add(*expires).UTC().Truncate(time.Second), Keys: map[string]sdkfw.Key{},
			RootRole: sdkfw.Role{Threshold: *rootK}, Firmware: sdkfw.Role{Threshold: *fwK}}
		for _, role := range []struct {
			files string
			ids   *[]string
		}{{*rootKeys, &r.RootRole.KeyIDs}, {*fwKeys, &r.Firmware.KeyIDs}} {
			for f := range strings.SplitSeq(role.files, ",") {
				id, k, err := readPub(f)
				if err != nil {
					return err
				}
				r.Keys[id] = k
				*role.ids = append(*role.ids, id)
			}
		}
		env, err := sdkfw.NewRootEnvelope(r)
		if err != nil {
			return err
		}
		if err := writeNew(*out, env.Marshal(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "root version %d written to %s (unsigned): sign it with 'rampart firmware cosign --key K --in %s'\n", r.Version, *out, *out)
		return nil
	case "sign":
		keyPath := fs.String("key", "", "sealed signing key")
		model := fs.String("model", "", "device model the image is for")
		version := fs.String("version", "", "firmware version (for people)")
		in := fs.String("in", "", "image file")
		seq := fs.Uint64("sequence", 0, "anti-rollback sequence (default: the current Unix time)")
		vendor := fs.String("vendor", "", "vendor (default: the key's)")
		expires := fs.Duration("expires", 90*24*time.Hour, "how long devices accept the manifest (freeze-attack bound)")
		out := fs.String("out", "", "manifest file (default: IMAGE.manifest)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *keyPath == "" || *model == "" || *version == "" || *in == "" || fs.NArg() > 0 {
			return errors.New("usage: rampart firmware sign --key K --model M --version V --in image.bin [--sequence N] [--expires D] [--out F]")
		}
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		k, keyVendor, err := loadKey(*keyPath)
		if err != nil {
			return err
		}
		if *vendor == "" {
			*vendor = keyVendor
		}
		now := time.Now().UTC().Truncate(time.Second)
		if *seq == 0 {
			*seq = uint64(now.Unix())
		}
		env, err := sdkfw.NewManifestEnvelope(sdkfw.Manifest{Vendor: *vendor, Model: *model, Version: *version, Sequence: *seq,
			Length: n, SHA256: hex.EncodeToString(h.Sum(nil)), Expires: now.Add(*expires), Created: now})
		if err != nil {
			return err
		}
		if err := env.Sign(k); err != nil {
			return err
		}
		if *out == "" {
			*out = *in + ".manifest"
		}
		if err := writeNew(*out, env.Marshal(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "signed %s %s %s sequence %d (%d bytes) -> %s\n", *vendor, *model, *version, *seq, n, *out)
		return nil
	case "cosign":
		keyPath := fs.String("key", "", "sealed signing key")
		in := fs.String("in", "", "root or manifest file to add a signature to")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *keyPath == "" || *in == "" || fs.NArg() > 0 {
			return errors.New("usage: rampart firmware cosign --key K --in FILE")
		}
		raw, err := os.ReadFile(*in)
		if err != nil {
			return err
		}
		env, _, err := sdkfw.ParseEnvelope(raw)
		if err != nil {
			return err
		}
		k, _, err := loadKey(*keyPath)
		if err != nil {
			return err
		}
		if err := env.Sign(k); err != nil {
			return err
		}
		if err := replaceFile(*in, env.Marshal()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s now has %d signature(s)\n", *in, len(env.Signatures))
		return nil
	case "verify":
		rootPath := fs.String("root", "", "trusted root file")
		manifest := fs.String("manifest", "", "manifest file")
		in := fs.String("in", "", "image file (optional)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *rootPath == "" || *manifest == "" || fs.NArg() > 0 {
			return errors.New("usage: rampart firmware verify --root R --manifest M [--in image.bin]")
		}
		rraw, err := os.ReadFile(*rootPath)
		if err != nil {
			return err
		}
		root, err := sdkfw.ParseRootUnverified(rraw)
		if err != nil {
			return err
		}
		mraw, err := os.ReadFile(*manifest)
		if err != nil {
			return err
		}
		m, err := sdkfw.VerifyManifest(root, mraw, time.Now())
		if err != nil {
			return err
		}
		if *in != "" {
			f, err := os.Open(*in)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, io.LimitReader(f, m.Length+1))
			f.Close()
			if err != nil {
				return err
			}
			if n != m.Length || hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
				return fmt.Errorf("%s does not match the manifest (%d bytes read, %d signed)", *in, n, m.Length)
			}
		}
		fmt.Fprintf(stdout, "ok: %s %s %s sequence %d, expires %s\n", m.Vendor, m.Model, m.Version, m.Sequence, m.Expires.Format(time.RFC3339))
		return nil
	}
	return fmt.Errorf("unknown firmware command %q; usage:%s", verb, firmwareUsage)
}

func readPub(path string) (string, sdkfw.Key, error) {
	raw, err := os.ReadFile(strings.TrimSpace(path))
	if err != nil {
		return "", sdkfw.Key{}, err
	}
	var p struct {
		KeyID string    `json:"key_id"`
		Key   sdkfw.Key `json:"key"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", sdkfw.Key{}, fmt.Errorf("%s is not a public key from 'rampart firmware keygen'", path)
	}
	pub, err := hex.DecodeString(p.Key.Public)
	if err != nil || len(pub) != ed25519.PublicKeySize || sdkfw.KeyID(pub) != p.KeyID {
		return "", sdkfw.Key{}, fmt.Errorf("%s: key ID does not match the key", path)
	}
	return p.KeyID, p.Key, nil
}

// writeNew creates path with perm, refusing to overwrite.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replaceFile rewrites path atomically, keeping its mode.
func replaceFile(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
