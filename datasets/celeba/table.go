package celeba

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
)

// table reads a whitespace-separated CelebA annotation file one non-blank
// line at a time. Fields are split on runs of ASCII white space, so runs of
// spaces, tabs and the CR of CRLF line endings are all accepted. Line numbers
// are physical (1-based) lines, blank lines included, so that error messages
// point at the line a text editor shows.
type table struct {
	path   string // shown in error messages
	sc     *bufio.Scanner
	line   int
	fields [][]byte
}

const maxLine = 1 << 20

func newTable(path string, r io.Reader) *table {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &table{path: path, sc: sc, fields: make([][]byte, 0, 48)}
}

// next advances to the next non-blank line and splits it into t.fields. It
// returns false at the end of the file or on a read error (see err).
func (t *table) next() bool {
	for t.sc.Scan() {
		t.line++
		b := t.sc.Bytes()
		if t.line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 byte-order mark
		}
		t.fields = splitFields(b, t.fields[:0])
		if len(t.fields) > 0 {
			return true
		}
	}
	return false
}

// err returns the read error that stopped next, naming the file and line.
func (t *table) err() error {
	err := t.sc.Err()
	if err == nil {
		return nil
	}
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%s:%d: line longer than %d bytes; is this a CelebA annotation file?", t.path, t.line+1, maxLine)
	}
	return fmt.Errorf("%s:%d: read: %w", t.path, t.line+1, err)
}

// errorf returns an error prefixed with "path:line: ".
func (t *table) errorf(format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", t.path, t.line, fmt.Sprintf(format, args...))
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// splitFields appends the white-space separated fields of b to dst.
func splitFields(b []byte, dst [][]byte) [][]byte {
	i := 0
	for i < len(b) {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		j := i
		for j < len(b) && !isSpace(b[j]) {
			j++
		}
		if j > i {
			dst = append(dst, b[i:j])
		}
		i = j
	}
	return dst
}

// joinFields renders fields for an error message, shortened if long.
func joinFields(f [][]byte) string {
	s := string(bytes.Join(f, []byte(" ")))
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return strconv.Quote(s)
}

// readCount reads line 1 of a counted file (attributes, landmarks, bbox):
// a single non-negative integer, the number of image rows that follow.
func (t *table) readCount() (int, error) {
	if !t.next() {
		if err := t.err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%s: empty file, want the image count on line 1", t.path)
	}
	if len(t.fields) != 1 {
		return 0, t.errorf("want the image count alone on the first line, got %d fields %s", len(t.fields), joinFields(t.fields))
	}
	n, err := strconv.Atoi(string(t.fields[0]))
	if err != nil || n < 0 {
		return 0, t.errorf("want the image count (a non-negative integer) on the first line, got %q", t.fields[0])
	}
	return n, nil
}

// readHeader reads the column-name line that follows the count line and
// checks it against want, field by field.
func (t *table) readHeader(want []string) error {
	if !t.next() {
		if err := t.err(); err != nil {
			return err
		}
		return fmt.Errorf("%s: ends after the count line, want the header %q next", t.path, joinStrings(want))
	}
	if len(t.fields) != len(want) {
		return t.errorf("want header %q (%d names), got %d names %s", joinStrings(want), len(want), len(t.fields), joinFields(t.fields))
	}
	for i, w := range want {
		if string(t.fields[i]) != w {
			return t.errorf("header name %d: want %q, got %q", i+1, w, t.fields[i])
		}
	}
	return nil
}

func joinStrings(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

// validName reports whether b is a plain image file name: non-empty, no
// directory separators, not "." or "..". This keeps a corrupt annotation file
// from pointing Image outside the image folder.
func validName(b []byte) bool {
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return false
	}
	return bytes.IndexAny(b, "/\\\x00") < 0
}

func base(path string) string { return filepath.Base(path) }
