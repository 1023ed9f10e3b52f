package salesforce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// csvReader reads Bulk API 2.0 result pages (RFC 4180: comma-separated, values in double quotes with
// embedded quotes doubled, line breaks allowed inside quotes, records ended by LF or CRLF).
//
// It exists because encoding/csv rewrites "\r\n" inside a quoted value to "\n" (its documentation: "a
// quoted-field ... carriage returns ... are normalized"), and text typed into Salesforce's UI holds CRLF: the
// Bulk path would then store other bytes than the REST and change-event paths, and every reconciliation
// would find those rows different. Here a quoted value's bytes are kept exactly; only the record separator
// outside quotes may be CRLF. Everything else follows encoding/csv's rules, which FuzzReadCSV checks against
// it: empty lines are skipped, a quote inside an unquoted value and a character after a closing quote are
// errors, a CR ending the input is dropped.
type csvReader struct {
	r    *bufio.Reader
	line int // lines read so far, for errors

	raw  []byte   // the current line, when it did not fit in the bufio buffer
	buf  []byte   // the current record's values, back to back
	ends []int    // end offset of each value in buf
	rec  []string // reused between records
}

func newCSVReader(r io.Reader) *csvReader {
	return &csvReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// errCSV reports malformed CSV with the line it was found on.
type errCSV struct {
	line int
	msg  string
}

func (e *errCSV) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// readLine returns the next line with its LF (none at the end of the input; a CR ending the input is
// dropped). The slice is valid until the next call.
func (c *csvReader) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.raw = append(c.raw[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = c.r.ReadSlice('\n')
			c.raw = append(c.raw, line...)
		}
		line = c.raw
	}
	if len(line) > 0 && errors.Is(err, io.EOF) {
		err = nil
		if line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
	}
	if err != nil {
		return nil, err
	}
	c.line++
	return line, nil
}

// lineEnd reports whether b is what is left of a line after its last value: nothing, LF or CRLF.
func lineEnd(b []byte) bool {
	return len(b) == 0 || (len(b) == 1 && b[0] == '\n') || (len(b) == 2 && b[0] == '\r' && b[1] == '\n')
}

// Read returns the next record, io.EOF after the last one. The slice is reused by the next call; its strings
// are not.
func (c *csvReader) Read() ([]string, error) {
	var line []byte
	for {
		l, err := c.readLine()
		if err != nil {
			return nil, err // io.EOF at the end
		}
		if !lineEnd(l) {
			line = l
			break
		}
	}
	c.buf, c.ends = c.buf[:0], c.ends[:0]
	start := c.line
	for {
		if len(line) == 0 || line[0] != '"' {
			// Unquoted: up to the next comma or the line's end.
			i := bytes.IndexByte(line, ',')
			v := line
			if i >= 0 {
				v = line[:i]
			} else {
				v = bytes.TrimSuffix(bytes.TrimSuffix(v, newline), carriageReturn)
			}
			if bytes.IndexByte(v, '"') >= 0 {
				return nil, &errCSV{c.line, `bare " in non-quoted-field`}
			}
			c.buf = append(c.buf, v...)
			c.ends = append(c.ends, len(c.buf))
			if i < 0 {
				break
			}
			line = line[i+1:]
			continue
		}
		// Quoted: every byte up to the closing quote, across lines; a doubled quote stands for one.
		line = line[1:]
		for {
			i := bytes.IndexByte(line, '"')
			if i < 0 {
				c.buf = append(c.buf, line...)
				l, err := c.readLine()
				if errors.Is(err, io.EOF) {
					return nil, &errCSV{start, `extraneous or missing " in quoted-field (the value never ends)`}
				}
				if err != nil {
					return nil, err
				}
				line = l
				continue
			}
			c.buf = append(c.buf, line[:i]...)
			line = line[i+1:]
			if len(line) > 0 && line[0] == '"' {
				c.buf = append(c.buf, '"')
				line = line[1:]
				continue
			}
			break
		}
		c.ends = append(c.ends, len(c.buf))
		if len(line) > 0 && line[0] == ',' {
			line = line[1:]
			continue
		}
		if !lineEnd(line) {
			return nil, &errCSV{c.line, `extraneous or missing " in quoted-field`}
		}
		break
	}
	s := string(c.buf)
	c.rec = c.rec[:0]
	from := 0
	for _, to := range c.ends {
		c.rec = append(c.rec, s[from:to])
		from = to
	}
	return c.rec, nil
}

var newline, carriageReturn = []byte{'\n'}, []byte{'\r'}
