package report

import (
	"archive/zip"
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/xuri/excelize/v2"
)

// Format is an output format of a report.
type Format string

// The formats.
const (
	XLSX Format = "xlsx"
	CSV  Format = "csv"
)

// ParseFormat accepts "xlsx" (also the default for "") and "csv".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "xlsx":
		return XLSX, nil
	case "csv":
		return CSV, nil
	}
	return "", fmt.Errorf("report: format %q: want xlsx or csv", s)
}

// ContentType is the MIME type of the format.
func (f Format) ContentType() string {
	if f == CSV {
		return "text/csv; charset=utf-8"
	}
	return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
}

// Fen is an amount in fen. Tables render it as yuan with two decimals
// ("123.45"), computed with integer division: no float ever holds money.
type Fen int64

// Yuan renders fen as yuan with two decimals: 12345 -> "123.45", -5 -> "-0.05".
func (f Fen) Yuan() string {
	n := int64(f)
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	frac := n % 100
	b := make([]byte, 0, 24)
	b = append(b, sign...)
	b = strconv.AppendInt(b, n/100, 10)
	b = append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
	return string(b)
}

// Column is one column of a table: its Chinese title and width (in
// characters, for xlsx).
type Column struct {
	Title string
	Width float64
}

// Table writes rows of cells; a cell is a string, an int, an int64 or a Fen.
// Close finishes the file; nothing is complete before it returns nil.
type Table interface {
	Row(cells []any) error
	Close() error
}

// NewTable starts a table in the given format on w and writes its header.
// sheet names the xlsx sheet.
func NewTable(w io.Writer, f Format, sheet string, cols []Column) (Table, error) {
	switch f {
	case XLSX:
		return newXLSX(w, sheet, cols)
	case CSV:
		return newCSV(w, cols)
	}
	return nil, fmt.Errorf("report: format %q: want xlsx or csv", f)
}

// ---- xlsx: excelize's StreamWriter spills rows to a temporary file past a
// small buffer, so memory does not grow with the number of rows.

type xlsxTable struct {
	w     io.Writer
	f     *excelize.File
	sw    *excelize.StreamWriter
	row   int
	money int // style of money cells (right-aligned text)
	cells []any
	ref   []byte
}

func newXLSX(w io.Writer, sheet string, cols []Column) (*xlsxTable, error) {
	f := excelize.NewFile()
	t := &xlsxTable{w: w, f: f}
	// excelize's Write builds the whole zip in a bytes.Buffer; its zip writer
	// hook lets the archive go straight to w instead, so the file is never
	// held in memory (the sheet's XML spills to a temporary file past 16 MiB).
	f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return zip.NewWriter(w) })
	fail := func(err error) (*xlsxTable, error) {
		f.Close()
		return nil, fmt.Errorf("report: xlsx: %w", err)
	}
	if err := f.SetSheetName("Sheet1", sheet); err != nil {
		return fail(err)
	}
	sw, err := f.NewStreamWriter(sheet)
	if err != nil {
		return fail(err)
	}
	t.sw = sw
	head, err := f.NewStyle(&excelize.Style{
		Font:      &excelize.Font{Bold: true},
		Fill:      excelize.Fill{Type: "pattern", Pattern: 1, Color: []string{"DDEBF7"}},
		Alignment: &excelize.Alignment{Horizontal: "center", Vertical: "center", WrapText: true},
		Border:    []excelize.Border{{Type: "bottom", Color: "808080", Style: 1}},
	})
	if err != nil {
		return fail(err)
	}
	if t.money, err = f.NewStyle(&excelize.Style{Alignment: &excelize.Alignment{Horizontal: "right"}}); err != nil {
		return fail(err)
	}
	for i, c := range cols {
		if c.Width > 0 {
			if err := sw.SetColWidth(i+1, i+1, c.Width); err != nil {
				return fail(err)
			}
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return fail(err)
	}
	hdr := make([]any, len(cols))
	for i, c := range cols {
		hdr[i] = excelize.Cell{StyleID: head, Value: c.Title}
	}
	if err := sw.SetRow("A1", hdr, excelize.RowOpts{Height: 20}); err != nil {
		return fail(err)
	}
	t.row = 1
	t.cells = make([]any, len(cols))
	return t, nil
}

func (t *xlsxTable) Row(cells []any) error {
	t.row++
	if cap(t.cells) < len(cells) {
		t.cells = make([]any, len(cells))
	}
	out := t.cells[:len(cells)]
	for i, c := range cells {
		switch v := c.(type) {
		case Fen:
			out[i] = excelize.Cell{StyleID: t.money, Value: v.Yuan()}
		default:
			out[i] = v
		}
	}
	t.ref = append(t.ref[:0], 'A')
	t.ref = strconv.AppendInt(t.ref, int64(t.row), 10)
	if err := t.sw.SetRow(string(t.ref), out); err != nil {
		return fmt.Errorf("report: xlsx row %d: %w", t.row, err)
	}
	return nil
}

func (t *xlsxTable) Close() error {
	defer t.f.Close()
	if err := t.sw.Flush(); err != nil {
		return fmt.Errorf("report: xlsx: %w", err)
	}
	// The zip writer set in newXLSX writes to t.w; what Write itself gets
	// is the (empty) buffer excelize would otherwise have filled.
	if err := t.f.Write(io.Discard); err != nil {
		return fmt.Errorf("report: xlsx: %w", err)
	}
	return nil
}

// ---- CSV: UTF-8 with a byte order mark, so Excel opens Chinese text right.

type csvTable struct {
	bw  *bufio.Writer
	cw  *csv.Writer
	rec []string
}

func newCSV(w io.Writer, cols []Column) (*csvTable, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("\ufeff")
	t := &csvTable{bw: bw, cw: csv.NewWriter(bw)}
	t.cw.UseCRLF = true
	hdr := make([]string, len(cols))
	for i, c := range cols {
		hdr[i] = c.Title
	}
	if err := t.cw.Write(hdr); err != nil {
		return nil, fmt.Errorf("report: csv: %w", err)
	}
	return t, nil
}

func (t *csvTable) Row(cells []any) error {
	t.rec = t.rec[:0]
	for _, c := range cells {
		switch v := c.(type) {
		case string:
			t.rec = append(t.rec, csvSafe(v))
		case Fen:
			t.rec = append(t.rec, v.Yuan())
		case int:
			t.rec = append(t.rec, strconv.Itoa(v))
		case int64:
			t.rec = append(t.rec, strconv.FormatInt(v, 10))
		case nil:
			t.rec = append(t.rec, "")
		default:
			t.rec = append(t.rec, csvSafe(fmt.Sprint(v)))
		}
	}
	if err := t.cw.Write(t.rec); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	return nil
}

func (t *csvTable) Close() error {
	t.cw.Flush()
	if err := t.cw.Error(); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	if err := t.bw.Flush(); err != nil {
		return fmt.Errorf("report: csv: %w", err)
	}
	return nil
}

// csvSafe defuses text a spreadsheet would read as a formula (bank messages
// come from outside): a leading = + - @ tab or CR gets a quote mark before it.
func csvSafe(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
