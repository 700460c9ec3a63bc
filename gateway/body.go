package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"unicode"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/gateway/validate"
	"yktgw/spool"
)

// Bodies: intake renders each planned file's detail lines once, while it holds
// the records in plaintext anyway, and seals them with the data key into
// <spool.dir>/body/<batch body>/<first>-<last>. The dispatcher then writes a
// file as header + body + trailer (format.RenderWithBody) instead of reading
// and decrypting every record of the spool again.
//
// A body is a cache, never the truth: the records in the spool are. It is
// used only when it opens (SM4-GCM; the additional data binds the batch, the
// seq range and the bank layout) and the totals it carries equal the planned
// file's count and fen, which the spool computed from the records; anything
// else (no body, a torn or stale one, a retired key, a layout that changed,
// a different file size) falls back to the records. So bodies need no fsync
// and a crash can only leave files that the start-up sweep removes.

const bodyMagic = "YKTBODY1"

// filePer is how many records a planned file of the profile holds.
func filePer(p *banks.Profile) int {
	if p.MaxRecordsPerFile > 0 {
		return p.MaxRecordsPerFile
	}
	return 50000
}

var layoutPrints sync.Map // *format.Layout -> []byte

// layoutPrint identifies a layout's definition: a body rendered with one
// layout is never used for a file of another (a changed profile).
func layoutPrint(l *format.Layout) []byte {
	if v, ok := layoutPrints.Load(l); ok {
		return v.([]byte)
	}
	js, err := json.Marshal(l)
	if err != nil {
		js = []byte(fmt.Sprintf("%p", l)) // never equal across processes: no body is used
	}
	h := sm3.Sum(js)
	v, _ := layoutPrints.LoadOrStore(l, h[:])
	return v.([]byte)
}

func bodyAAD(dst []byte, batchID string, first, last int, layout []byte) []byte {
	dst = append(dst, "yktgw-body-v1"...)
	dst = append(dst, 0)
	dst = append(dst, batchID...)
	dst = append(dst, 0)
	dst = strconv.AppendInt(dst, int64(first), 10)
	dst = append(dst, 0)
	dst = strconv.AppendInt(dst, int64(last), 10)
	dst = append(dst, 0)
	return append(dst, layout...)
}

func bodyDir(spoolDir, body string) string { return filepath.Join(spoolDir, "body", body) }

func bodyPath(spoolDir, body string, first, last int) string {
	return filepath.Join(bodyDir(spoolDir, body), bodyFile(first, last))
}

// bodyFile names the body of the planned file of records first..last.
func bodyFile(first, last int) string { return strconv.Itoa(first) + "-" + strconv.Itoa(last) }

// bodyTotals is room for a body's count and fen, ahead of its lines.
var bodyTotals [16]byte

// newBodyName returns a fresh, unguessable name for a batch's bodies (two
// stages of the same batch id never share one).
func newBodyName() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// bodyBuilder renders the detail lines of one batch's files at intake. It
// runs as the records are checked (rendering is intake's layout check), sees
// them in seq order and writes a sealed body whenever a planned file is
// complete. Any surprise (a record out
// of order, a render or write error) gives up: the batch is then delivered
// from its records, as before bodies existed.
type bodyBuilder struct {
	fc        FieldCipher
	dir       string
	batchID   string
	per, last int // records per file, last seq of the batch
	print     []byte
	bw        *format.BodyWriter
	buf       bytes.Buffer // 16 bytes of totals, then the detail lines
	sealed    []byte
	aad       []byte
	first     int // first seq of the body being built
	next      int // seq expected next
	err       error
	made      bool
}

// newBodyBuilder returns nil when the batch's layout cannot have bodies.
func newBodyBuilder(fc FieldCipher, spoolDir, body string, p *banks.Profile, h *headerJSON, count int) *bodyBuilder {
	if spoolDir == "" || body == "" || p == nil || p.Outbound == nil || !p.Outbound.BodyPortable() || count < 1 {
		return nil
	}
	bb := &bodyBuilder{fc: fc, dir: bodyDir(spoolDir, body), batchID: h.BatchID, per: filePer(p), last: count,
		print: layoutPrint(p.Outbound), first: 1, next: 1}
	bw, err := p.Outbound.NewBodyWriter(&bb.buf, format.Batch{Memo: h.Memo, SubsidyCode: h.Subsidy.Code, SubsidyName: h.Subsidy.Name,
		Tenant: h.Tenant, Period: h.Period, BatchID: h.BatchID})
	if err != nil {
		return nil
	}
	bb.bw = bw
	bb.buf.Grow(min(bb.per, count)*96 + 16)
	bb.buf.Write(bodyTotals[:])
	return bb
}

// render renders one validated record (seq order) into its file's body and
// seals the body when the file is complete. It reports whether the record
// rendered and passes the rest of format's CheckRecord (seq, blank name or
// account, amount): then CheckRecord has nothing to report and intake skips
// it. false says nothing either way: intake runs CheckRecord.
func (bb *bodyBuilder) render(r *validate.Record) bool {
	if bb == nil || bb.err != nil {
		return false
	}
	if r.Seq != bb.next {
		bb.fail(fmt.Errorf("record %d where %d was expected: records out of order", r.Seq, bb.next))
		return false
	}
	if r.Seq < 1 || r.AmountFen <= 0 || blank(r.Name) || blank(r.Account) {
		bb.fail(fmt.Errorf("record %d: not renderable", r.Seq))
		return false
	}
	if err := bb.bw.Add(format.Record{Seq: r.Seq, Name: r.Name, IDNumber: r.IDNumber, Account: r.Account,
		AccountKind: r.AccountKind, AmountFen: r.AmountFen, Remark: r.Remark}); err != nil {
		bb.fail(err) // a half-rendered line (XML): this body is lost; the batch is refused anyway
		return false
	}
	bb.next++
	if r.Seq == min(bb.first+bb.per-1, bb.last) {
		bb.cut(r.Seq)
	}
	return true
}

// blank is strings.TrimSpace(s) == "" (format's CheckRecord test) without
// trimming: true when every rune of s is white space.
func blank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

func (bb *bodyBuilder) cut(last int) {
	if err := bb.bw.Flush(); err != nil {
		bb.fail(err)
		return
	}
	n, fen := bb.bw.Totals()
	plain := bb.buf.Bytes()
	binary.BigEndian.PutUint64(plain[0:8], uint64(n))
	binary.BigEndian.PutUint64(plain[8:16], uint64(fen))
	bb.aad = bodyAAD(bb.aad[:0], bb.batchID, bb.first, last, bb.print)
	var err error
	bb.sealed = append(bb.sealed[:0], bodyMagic...)
	bb.sealed, err = bb.fc.EncryptTo(bb.sealed, plain, bb.aad)
	clear(plain) // personal data
	if err == nil && !bb.made {
		err = os.MkdirAll(bb.dir, 0o700)
		bb.made = err == nil
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(bb.dir, bodyFile(bb.first, last)), bb.sealed, 0o600)
	}
	if err != nil {
		bb.fail(err)
		return
	}
	bb.buf.Reset()
	bb.buf.Write(bodyTotals[:])
	bb.bw.Reset(&bb.buf)
	bb.first = last + 1
}

func (bb *bodyBuilder) fail(err error) {
	bb.err = err
	clear(bb.buf.Bytes())
	bb.buf = bytes.Buffer{}
	bb.discard()
}

// discard removes what was written (the batch was refused, or bodies failed).
func (bb *bodyBuilder) discard() {
	if bb != nil && bb.made {
		os.RemoveAll(bb.dir)
		bb.made = false
	}
}

// incomplete says why an accepted batch's files lack bodies ("" when each
// has its body, or the layout never has any). Its files are then rendered
// from the records, slower but the same.
func (bb *bodyBuilder) incomplete() string {
	switch {
	case bb == nil:
		return ""
	case bb.err != nil:
		return bb.err.Error()
	case bb.next != bb.last+1:
		return fmt.Sprintf("rendered up to record %d of %d", bb.next-1, bb.last)
	}
	return ""
}

// renderFromBody writes the planned file dl from its body into w. ok false
// (with the reason) means there is no usable body: render from the records.
func (g *Gateway) renderFromBody(w *bytes.Buffer, p *banks.Profile, b *spool.Batch, dl spool.Delivery, fb format.Batch) (bool, error) {
	if b.Body == "" || g.cfg.Spool.Dir == "" || !p.Outbound.BodyPortable() {
		return false, nil
	}
	sealed, err := os.ReadFile(bodyPath(g.cfg.Spool.Dir, b.Body, dl.FirstSeq, dl.LastSeq))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !bytes.HasPrefix(sealed, []byte(bodyMagic)) {
		return false, errors.New("body: not a body file")
	}
	aad := bodyAAD(nil, b.BatchID, dl.FirstSeq, dl.LastSeq, layoutPrint(p.Outbound))
	plain, err := g.fields.DecryptTo(nil, sealed[len(bodyMagic):], aad)
	if err != nil {
		return false, fmt.Errorf("body: %w", err)
	}
	defer clear(plain) // personal data
	if len(plain) < 16 {
		return false, errors.New("body: too short")
	}
	n, fen := int64(binary.BigEndian.Uint64(plain[0:8])), int64(binary.BigEndian.Uint64(plain[8:16]))
	if n != int64(dl.Count) || fen != dl.TotalFen {
		return false, fmt.Errorf("body holds %d records / %d fen, the planned file %d / %d fen", n, fen, dl.Count, dl.TotalFen)
	}
	if err := p.Outbound.RenderWithBody(w, fb, plain[16:]); err != nil {
		clear(w.Bytes())
		w.Reset()
		return false, fmt.Errorf("body: %w", err)
	}
	return true, nil
}

// dropBody removes a file's body once the sealed file is in the spool, and
// the batch's body directory with its last body.
func (g *Gateway) dropBody(b *spool.Batch, dl spool.Delivery) {
	if b.Body == "" || g.cfg.Spool.Dir == "" {
		return
	}
	os.Remove(bodyPath(g.cfg.Spool.Dir, b.Body, dl.FirstSeq, dl.LastSeq))
	os.Remove(bodyDir(g.cfg.Spool.Dir, b.Body)) // fails while other bodies remain
}

// sweepBodies removes bodies nothing will use: those of stages a crash left
// (Open removed the stages), of refused batches, and of batches past sending.
// It runs at start-up, before intake opens.
func (g *Gateway) sweepBodies(ctx context.Context) error {
	if g.cfg.Spool.Dir == "" {
		return nil
	}
	root := filepath.Join(g.cfg.Spool.Dir, "body")
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	keep := map[string]bool{}
	for _, st := range []spool.BatchState{spool.BatchReceived, spool.BatchQueued, spool.BatchSending} {
		before := ""
		for {
			bs, err := g.store.Batches(ctx, spool.BatchFilter{State: st, Limit: 1000, Before: before})
			if err != nil {
				return err
			}
			for _, b := range bs {
				if b.Body != "" {
					keep[b.Body] = true
				}
			}
			if len(bs) < 1000 {
				break
			}
			before = bs[len(bs)-1].BatchID
		}
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
