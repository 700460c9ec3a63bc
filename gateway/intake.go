package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unsafe"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/banks"
	"yktgw/banks/format"
	"yktgw/crypto"
	"yktgw/gateway/validate"
	"yktgw/spool"
)

// FieldCipher encrypts personal fields and computes blind indexes
// (crypto.DataKeyring implements it).
type FieldCipher interface {
	EncryptTo(dst, plaintext, aad []byte) ([]byte, error)
	DecryptTo(dst, ciphertext, aad []byte) ([]byte, error)
	BlindIndexTo(dst []byte, domain, value string) []byte
	// BlindIndexesTo appends BlindIndexTo's value for each of values, in
	// order (32 bytes each): a chunk at a time, eight at once where it can.
	BlindIndexesTo(dst []byte, domain string, values []string) []byte
}

// Blind index domains and the stored index length.
const (
	domainID      = "id_number"
	domainAccount = "account"
	indexLen      = 16
)

// Status codes of a submission (DESIGN.md "HTTP API").
const (
	StatusCreated  = 201
	StatusSame     = 200
	StatusConflict = 409
	StatusInvalid  = 422
	StatusBad      = 400
)

// BatchView is what the API returns about a batch.
type BatchView struct {
	BatchID         string           `json:"batch_id"`
	Tenant          string           `json:"tenant"`
	Bank            string           `json:"bank"`
	Subsidy         SubsidyJSON      `json:"subsidy"`
	Period          string           `json:"period"`
	Memo            string           `json:"memo"`
	State           spool.BatchState `json:"state"`
	TotalCount      int              `json:"total_count"`
	TotalFen        int64            `json:"total_fen"`
	Warnings        []validate.Issue `json:"warnings"`
	WarningsDropped int              `json:"warnings_dropped,omitempty"`
	Records         []StateCountJSON `json:"records,omitempty"`
	ReissueOf       string           `json:"reissue_of,omitempty"`
	CreatedAt       time.Time        `json:"created_at"`
	UpdatedAt       time.Time        `json:"updated_at"`
}

// SubsidyJSON is the subsidy object of the API.
type SubsidyJSON struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// StateCountJSON is a per-state tally in fen.
type StateCountJSON struct {
	Status string `json:"status"`
	Count  int    `json:"count"`
	Fen    int64  `json:"fen"`
}

// SubmitResult is the outcome of one submission: a status and a body.
type SubmitResult struct {
	Status int
	Batch  *BatchView
	Errors *ErrorBody
}

// ErrorBody is the 4xx body: every problem, capped, with a count beyond the cap.
type ErrorBody struct {
	Errors        []validate.Issue `json:"errors"`
	ErrorsDropped int              `json:"errors_dropped,omitempty"`
	Warnings      []validate.Issue `json:"warnings,omitempty"`
}

func errorResult(status int, issues ...validate.Issue) SubmitResult {
	return SubmitResult{Status: status, Errors: &ErrorBody{Errors: issues}}
}

type headerJSON struct {
	BatchID    string          `json:"batch_id"`
	Tenant     string          `json:"tenant"`
	Bank       string          `json:"bank"`
	Subsidy    SubsidyJSON     `json:"subsidy"`
	Period     string          `json:"period"`
	Memo       string          `json:"memo"`
	TotalCount json.RawMessage `json:"total_count"`
	TotalFen   json.RawMessage `json:"total_fen"`
	ReissueOf  *ReissueJSON    `json:"reissue_of,omitempty"`
}

// ReissueJSON names the FAILED records a batch pays again (退回 then
// corrected): the n-th record of the batch reissues Seqs[n-1] of BatchID.
type ReissueJSON struct {
	BatchID string `json:"batch_id"`
	Seqs    []int  `json:"seqs"`
}

type recordJSON struct {
	Seq         json.RawMessage `json:"seq"`
	Name        string          `json:"name"`
	IDNumber    string          `json:"id_number"`
	Account     string          `json:"account"`
	AccountKind string          `json:"account_kind"`
	AmountFen   json.RawMessage `json:"amount_fen"`
	Remark      string          `json:"remark"`
}

// intake is one submission in flight. It validates every record as it streams
// in, writes chunks to an invisible spool stage while the batch is still clean,
// and stops writing (but keeps validating, so every error is reported) at the
// first error.
type intake struct {
	g       *Gateway
	ctx     context.Context
	who     *Principal
	h       headerJSON
	count   int64
	fen     int64
	issues  validate.Issues
	rules   validate.Rules
	bank    *banks.Profile
	seqs    *validate.SeqTracker
	totals  validate.Totals
	hash    hash.Hash
	stage   spool.Stage
	existed *spool.Batch      // same batch_id already accepted: compare content only
	chunk   []validate.Record // validated, not yet sealed (see startWriter)
	buf     []byte            // scratch for AAD, hashing
	// The sealer and the stage writer (startWriter): chunks go out, emptied
	// ones come back.
	chunks     chan []validate.Record
	free       chan []validate.Record
	writerDone chan error
	writerErr  error
	body       *bodyBuilder // the files' detail lines, rendered as records are checked (nil: none)
	lanes      laneTimes
	// today is the date birth dates are checked against, read from the
	// clock again after todayEvery records (a millisecond or two of work):
	// reading it for every record was a twentieth of this goroutine's time.
	today     validate.Day
	todayLeft int
	finalized bool
	headerOK  bool
	nrec      int
}

// laneTimes is where an intake's time went, logged with "batch accepted":
// the reader waiting to hand a chunk to the sealer, the sealer sealing and
// waiting (for a chunk, or for the writer to take one), the writer adding
// chunks to the stage and waiting for the next (and, in the log, Finalize).
// The lane that never waits sets the pace.
type laneTimes struct {
	chunks                                             int
	readWait, sealBusy, sealWait, writeBusy, writeWait time.Duration
}

func (in *intake) fail(field, code, msg string) {
	in.issues.Add(validate.Issue{Field: field, Code: code, Message: msg, Severity: validate.Error})
}

// Submit reads one submission (JSON or NDJSON) from body and answers it. Only
// a committed batch is acknowledged with 201; everything refused leaves the
// spool as it was.
func (g *Gateway) Submit(ctx context.Context, who *Principal, body io.Reader, ndjson bool) (SubmitResult, error) {
	in := &intake{g: g, ctx: ctx, who: who, hash: sm3.New()}
	in.issues.Max = g.cfg.Intake.MaxErrors
	res, err := in.run(body, ndjson)
	if werr := in.stopWriter(); werr != nil && err == nil && res.Status == StatusCreated {
		err = werr // cannot happen: finish waits for the writer first
	}
	if in.stage != nil {
		// Whatever happened, a stage that was not finalized must leave no trace.
		if aerr := in.stage.Abort(ctx); aerr != nil && err == nil {
			err = aerr
		}
	}
	if !in.finalized {
		in.body.discard()
	} else if why := in.body.incomplete(); why != "" {
		g.log.Warn("intake: files will be rendered from the records, not from bodies", "batch", in.h.BatchID, "why", why)
	}
	return res, err
}

func (in *intake) run(body io.Reader, ndjson bool) (SubmitResult, error) {
	tr := &trackReader{r: body}
	dec := json.NewDecoder(tr)
	dec.DisallowUnknownFields()
	var err error
	if ndjson {
		err = in.readNDJSON(dec, tr)
	} else {
		err = in.readJSON(dec)
	}
	if err != nil {
		var se *spoolError
		var me *http.MaxBytesError
		switch {
		case errors.As(err, &se):
			return SubmitResult{}, err
		case errors.As(tr.err, &me):
			return errorResult(413, validate.Issue{Field: "body", Code: "body.too_large", Message: "请求体过大 (body too large)"}), nil
		case tr.err != nil, errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return errorResult(StatusBad, validate.Issue{Seq: in.nrec, Field: "body", Code: "body.truncated", Message: "请求体不完整 (body cut off)"}), nil
		default:
			return errorResult(StatusBad, validate.Issue{Seq: in.nrec, Field: "body", Code: "body.malformed", Message: "JSON 格式错误 (malformed JSON): " + err.Error()}), nil
		}
	}
	return in.finish()
}

// trackReader remembers a read error of the body (client gone, size limit),
// to tell a cut-off upload from malformed JSON.
type trackReader struct {
	r   io.Reader
	err error
}

func (t *trackReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// spoolError marks a failure of the spool (not of the input): a 503.
type spoolError struct{ error }

func (e *spoolError) Unwrap() error { return e.error }

var errSyntax = errors.New("unexpected JSON structure")

// maxBufferedRecords bounds the records of a JSON batch whose header fields
// come after "records" (a client serializing a map in key order does that):
// they are held until the header is complete (the body limit,
// intake.max_body_bytes, bounds the read; this bounds what is accepted).
// Larger batches must put the header first, or use NDJSON.
const maxBufferedRecords = 64 << 20

// headerKeys are the header fields that must be known before records stream.
var headerKeys = []string{"batch_id", "tenant", "bank", "subsidy", "period", "total_count", "total_fen"}

// readJSON walks {"batch_id":…, …, "records":[…]} token by token so records
// stream when the header fields come first; otherwise the records array is
// held (bounded) until the object ends.
func (in *intake) readJSON(dec *json.Decoder) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	sawRecords := false
	seen := map[string]bool{}
	var held json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if key == "records" {
			if sawRecords {
				return fmt.Errorf("%w: records twice", errSyntax)
			}
			sawRecords = true
			complete := true
			for _, k := range headerKeys {
				complete = complete && seen[k]
			}
			if !complete {
				// Header fields may still follow: hold the records (bounded).
				if err := dec.Decode(&held); err != nil {
					return err
				}
				continue
			}
			in.startRecords()
			if err := in.recordArray(dec); err != nil {
				return err
			}
			continue
		}
		seen[key] = true
		if err := in.headerField(dec, key); err != nil {
			return err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the batch object", errSyntax)
	}
	if held == nil && sawRecords {
		return nil // streamed already
	}
	in.startRecords()
	if held != nil {
		if len(held) > maxBufferedRecords {
			in.fail("records", "batch.field_order", "批次头字段须在 records 之前，或使用 NDJSON (header fields must precede records in a batch this large, or use NDJSON)")
			return nil
		}
		hd := json.NewDecoder(bytes.NewReader(held))
		hd.DisallowUnknownFields()
		return in.recordArray(hd)
	}
	return nil
}

func (in *intake) recordArray(dec *json.Decoder) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for dec.More() {
		if err := in.record(dec); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

// readNDJSON: a header object, then one record object a line (records may
// be separated by any JSON whitespace). The header is decoded by dec, the
// records by walkRecords.
func (in *intake) readNDJSON(dec *json.Decoder, body io.Reader) error {
	if err := dec.Decode(&in.h); err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	in.startRecords()
	return walkRecords(dec, body, func(rj *recordJSON, err error) error {
		in.nrec++
		if err != nil {
			return err
		}
		return in.checkRecord(rj)
	})
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return fmt.Errorf("%w: want %q, got %v", errSyntax, d, tok)
	}
	return nil
}

func (in *intake) headerField(dec *json.Decoder, key string) error {
	var dst any
	switch key {
	case "batch_id":
		dst = &in.h.BatchID
	case "tenant":
		dst = &in.h.Tenant
	case "bank":
		dst = &in.h.Bank
	case "subsidy":
		dst = &in.h.Subsidy
	case "period":
		dst = &in.h.Period
	case "memo":
		dst = &in.h.Memo
	case "total_count":
		dst = &in.h.TotalCount
	case "total_fen":
		dst = &in.h.TotalFen
	case "reissue_of":
		dst = &in.h.ReissueOf
	default:
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
		in.fail(key, "batch.unknown_field", "未知字段 (unknown field)")
		return nil
	}
	return dec.Decode(dst)
}

// startRecords checks the header and, when it is clean and the batch is new,
// opens the spool stage.
func (in *intake) startRecords() {
	h := &in.h
	g := in.g
	if !validBatchID(h.BatchID) {
		in.fail("batch_id", "batch_id.invalid", "批次号须为 1-64 位字母、数字、-_. (1-64 of A-Z a-z 0-9 - _ .)")
	}
	if !ValidDivision(h.Tenant) {
		in.fail("tenant", "tenant.invalid", "区划代码须为 6、9 或 12 位数字 (division code of 6, 9 or 12 digits)")
	} else if !in.who.Covers(h.Tenant) {
		in.fail("tenant", "tenant.forbidden", "令牌无权代表该区划 (token not scoped to this tenant)")
	}
	in.bank = g.profiles[h.Bank]
	if in.bank == nil {
		in.fail("bank", "bank.unknown", "未配置的银行 (no such bank profile)")
	}
	if h.Subsidy.Code == "" {
		in.fail("subsidy.code", "subsidy.missing", "缺少补贴项目代码 (subsidy code required)")
	} else if _, ok := g.caps[h.Subsidy.Code]; !ok {
		in.fail("subsidy.code", validate.CodeSubsidyUnknown, validate.Message(validate.CodeSubsidyUnknown))
	}
	if !validPeriod(h.Period) {
		in.fail("period", "period.invalid", "期间格式应为 YYYY-MM 或 YYYY (period YYYY-MM or YYYY)")
	}
	var err error
	if in.count, err = decodeInt(h.TotalCount); err != nil || in.count < 1 {
		in.fail("total_count", "total_count.invalid", "总笔数须为正整数 (total_count must be a positive JSON integer)")
		in.count = 0
	} else if in.count > int64(g.cfg.Intake.MaxRecords) {
		in.fail("total_count", "total_count.too_many", "超过单批笔数上限 "+strconv.Itoa(g.cfg.Intake.MaxRecords)+" (more records than allowed)")
		in.count = 0
	}
	if in.fen, err = validate.DecodeAmountFen(h.TotalFen); err != nil || in.fen < 1 {
		in.fail("total_fen", "total_fen.invalid", "总金额须为正整数分 (total_fen must be a positive JSON integer in fen)")
	}
	if in.bank != nil && h.Memo != "" {
		for _, fe := range in.bank.Outbound.CheckRecord(format.Record{Seq: 1, AmountFen: 1, Name: "x", IDNumber: "x", Account: "0"}, h.Memo) {
			if fe.Field == "memo" {
				in.fail("memo", "memo."+fe.Code, fe.Message)
			}
		}
	}
	in.checkReissue()
	in.rules = validate.Rules{CapFen: g.caps, Now: g.now}
	if in.bank != nil {
		in.rules.Luhn = in.bank.Luhn
	}
	in.seqs = validate.NewSeqTracker(int(in.count))
	in.headerOK = !in.issues.HasErrors()
	in.hashHeader()
	if !in.headerOK {
		return
	}
	b, err := g.store.Batch(in.ctx, h.BatchID)
	switch {
	case err == nil:
		in.existed = b
		return
	case !errors.Is(err, spool.ErrNotFound):
		in.fail("batch_id", "spool.unavailable", "暂时无法入库，请重试 (spool unavailable, retry)")
		in.headerOK = false
		g.log.Error("intake: spool lookup", "batch", h.BatchID, "err", err)
		return
	}
	body := ""
	if g.cfg.Spool.Dir != "" && in.bank.Outbound.BodyPortable() {
		body = newBodyName() // the files' detail lines are rendered as the records stream (body.go)
	}
	st, err := g.store.BeginBatch(in.ctx, &spool.Batch{BatchID: h.BatchID, Tenant: h.Tenant, Bank: h.Bank,
		SubsidyCode: h.Subsidy.Code, SubsidyName: h.Subsidy.Name, Period: h.Period, Memo: h.Memo, SubmittedBy: in.who.TokenID,
		TotalCount: int(in.count), TotalFen: in.fen, // as declared: the stage sizes what it keeps for Finalize by it
		ReissueOf: in.reissueOf(), Body: body})
	if err != nil {
		in.fail("batch_id", "spool.unavailable", "暂时无法入库，请重试 (spool unavailable, retry)")
		in.headerOK = false
		g.log.Error("intake: begin", "batch", h.BatchID, "err", err)
		return
	}
	in.stage = st
	in.body = newBodyBuilder(g.fields, g.cfg.Spool.Dir, body, in.bank, h, int(in.count))
	in.chunk = make([]validate.Record, 0, g.cfg.Intake.ChunkRecords)
	in.startWriter()
}

// record decodes one record and checks it (checkRecord).
func (in *intake) record(dec *json.Decoder) error {
	in.nrec++
	var rj recordJSON
	if err := dec.Decode(&rj); err != nil {
		return err
	}
	return in.checkRecord(&rj)
}

// todayEvery is how many records are checked against one reading of the
// date (intake.today).
const todayEvery = 1024

// checkRecord validates, hashes and (while the batch is clean) stages one
// decoded record, the in.nrec-th. rj is not kept.
func (in *intake) checkRecord(rj *recordJSON) error {
	if in.nrec > in.g.cfg.Intake.MaxRecords {
		if in.nrec == in.g.cfg.Intake.MaxRecords+1 {
			in.fail("records", "total_count.too_many", "超过单批笔数上限 (more records than allowed)")
		}
		return nil
	}
	seq64, err := decodeInt(rj.Seq)
	r := validate.Record{Name: rj.Name, IDNumber: rj.IDNumber, Account: rj.Account, AccountKind: rj.AccountKind, Remark: rj.Remark}
	if err != nil || seq64 < 1 || seq64 > 1<<31 {
		in.issues.Add(validate.Issue{Seq: in.nrec, Field: "seq", Code: "seq.invalid", Message: "序号须为正整数 (seq must be a positive JSON integer; position shown)", Severity: validate.Error})
		r.Seq = 0
	} else {
		r.Seq = int(seq64)
		in.seqs.Add(r.Seq, &in.issues)
	}
	amount, err := validate.DecodeAmountFen(rj.AmountFen)
	amountOK := err == nil
	if !amountOK {
		var ce *validate.CodeError
		code, msg := "amount.not_integer", "金额须为整数分 (amount_fen must be a JSON integer)"
		if errors.As(err, &ce) {
			code, msg = ce.Code, ce.Message
		}
		in.issues.Add(validate.Issue{Seq: r.Seq, Field: "amount_fen", Code: code, Message: msg, Severity: validate.Error})
		amount = 1 // keep checking the other fields
	}
	r.AmountFen = amount
	before := in.issues.ErrorCount()
	if in.todayLeft == 0 {
		in.today, in.todayLeft = in.rules.Today(), todayEvery
	}
	in.todayLeft--
	in.rules.RecordOn(in.h.Subsidy.Code, in.today, &r, &in.issues)
	if amountOK {
		in.totals.Add(amount)
	}
	// The layout check: while the batch is clean, rendering the record into
	// its file's body is that check (a record that renders has nothing
	// CheckRecord would report); otherwise, or when it does not render,
	// CheckRecord lists every problem.
	if in.bank != nil && in.issues.ErrorCount() == before && !(in.stage != nil && !in.issues.HasErrors() && in.body.render(&r)) {
		for _, fe := range in.bank.Outbound.CheckRecord(format.Record{Seq: r.Seq, Name: r.Name, IDNumber: r.IDNumber,
			Account: r.Account, AccountKind: r.AccountKind, AmountFen: r.AmountFen, Remark: r.Remark}, "") {
			in.issues.Add(validate.Issue{Seq: r.Seq, Field: fieldName(fe.Field), Code: "layout." + fe.Code, Message: fe.Message, Severity: validate.Error})
		}
	}
	in.hashRecord(&r)
	if in.stage == nil || in.issues.HasErrors() {
		return nil
	}
	in.chunk = append(in.chunk, r)
	if len(in.chunk) == cap(in.chunk) {
		return in.flush()
	}
	return nil
}

func fieldName(layoutField string) string {
	switch layoutField {
	case "amount":
		return "amount_fen"
	}
	return layoutField
}

// startWriter starts two goroutines: the sealer encrypts the personal fields
// of a chunk of validated records and computes their blind indexes, and the
// writer adds the sealed chunk to the stage. Decoding and validating the next
// chunk, sealing this one and writing the one before overlap (the two cores
// both work). At most a few chunks are in flight: the channels hold one each.
func (in *intake) startWriter() {
	in.chunks = make(chan []validate.Record, 1)
	in.writerDone = make(chan error, 1)
	in.free = make(chan []validate.Record, 2)
	sealed := make(chan []spool.Record, 1)
	freeSealed := make(chan []spool.Record, 2)
	sealDone := make(chan error, 1)
	chunks, free, done, stage, ctx := in.chunks, in.free, in.writerDone, in.stage, in.ctx
	sl := &sealer{fc: in.g.fields, batchID: in.h.BatchID, subsidy: in.h.Subsidy.Code, period: in.h.Period}
	if ro := in.h.ReissueOf; ro != nil {
		sl.reissue = ro.Seqs
	}
	lt := &in.lanes // each goroutine writes its own fields; read after stopWriter
	go func() {
		var err error
		start := time.Now()
		for c := range chunks {
			if err == nil {
				var out []spool.Record
				select {
				case out = <-freeSealed:
				default:
					out = make([]spool.Record, 0, cap(c))
				}
				t := time.Now()
				out, err = sl.seal(out, c)
				lt.sealBusy += time.Since(t)
				if err == nil {
					sealed <- out
				}
			}
			clear(c) // personal data: drop the plaintext
			select {
			case free <- c[:0]:
			default:
			}
		}
		lt.sealWait = time.Since(start) - lt.sealBusy
		close(sealed)
		sealDone <- err
	}()
	go func() {
		var err error
		start := time.Now()
		for c := range sealed {
			if err == nil {
				t := time.Now()
				err = stage.Add(ctx, c)
				lt.writeBusy += time.Since(t)
				lt.chunks++
			}
			select {
			case freeSealed <- c[:0]:
			default:
			}
		}
		lt.writeWait = time.Since(start) - lt.writeBusy
		if serr := <-sealDone; serr != nil {
			err = serr
		}
		done <- err
	}()
}

// sealer seals validated records for the stage.
type sealer struct {
	fc                       FieldCipher
	batchID, subsidy, period string
	reissue                  []int
	buf                      []byte
	plain                    []byte // a record's combined plaintext, wiped after each seal
	// arena holds the chunk's ciphertexts and indexes: the records point
	// into it (a few allocations a chunk instead of seven a record). A new
	// arena is taken for every chunk: the writer may still hold the last.
	arena []byte
	// Scratch of indexes: the chunk's values of one kind, their indexes,
	// and the dedupe keys' messages.
	values []string
	idx    []byte
	msgBuf []byte
	msgs   [][]byte
}

func (sl *sealer) seal(dst []spool.Record, recs []validate.Record) ([]spool.Record, error) {
	sl.arena = make([]byte, 0, len(recs)*sealedRecordBytes)
	start := len(dst)
	for i := range recs {
		rec, err := sl.one(&recs[i])
		if err != nil {
			return dst, fmt.Errorf("seal record %d: %w", recs[i].Seq, err)
		}
		dst = append(dst, rec)
	}
	sl.indexes(dst[start:], recs)
	return dst, nil
}

// indexes computes the chunk's blind indexes and dedupe keys, each kind for
// the whole chunk at once (crypto computes eight at a time where it can).
func (sl *sealer) indexes(out []spool.Record, recs []validate.Record) {
	sl.blindIndexes(out, recs, domainID, func(r *validate.Record) string { return r.IDNumber },
		func(o *spool.Record, idx []byte) { o.IDIndex = idx })
	sl.blindIndexes(out, recs, domainAccount, func(r *validate.Record) string { return r.Account },
		func(o *spool.Record, idx []byte) { o.AccountIndex = idx })
	// The dedupe keys (DedupeKey), from messages built in one buffer sized
	// for them all, so that the slices stay valid.
	per := indexLen + 2 + len(sl.subsidy) + len(sl.period)
	if cap(sl.msgBuf) < len(out)*per {
		sl.msgBuf = make([]byte, 0, len(out)*per)
	}
	sl.msgBuf, sl.msgs = sl.msgBuf[:0], sl.msgs[:0]
	for i := range out {
		at := len(sl.msgBuf)
		sl.msgBuf = appendDedupeMessage(sl.msgBuf, out[i].IDIndex, sl.subsidy, sl.period)
		sl.msgs = append(sl.msgs, sl.msgBuf[at:len(sl.msgBuf):len(sl.msgBuf)])
	}
	sl.idx = crypto.SM3ShortsTo(sl.idx[:0], sl.msgs)
	for i := range out {
		out[i].DedupeKey = sl.keepCopy(sl.idx[i*sm3.Size:][:indexLen])
	}
}

// blindIndexes computes one kind of blind index (domain, of the value field
// gives) for the chunk and hands each record's first indexLen bytes, kept in
// the arena, to set.
func (sl *sealer) blindIndexes(out []spool.Record, recs []validate.Record, domain string, field func(*validate.Record) string, set func(*spool.Record, []byte)) {
	sl.values = sl.values[:0]
	for i := range recs {
		sl.values = append(sl.values, field(&recs[i]))
	}
	sl.idx = sl.fc.BlindIndexesTo(sl.idx[:0], domain, sl.values)
	clear(sl.values) // the strings are the records' (wiped by the caller): drop the references
	for i := range out {
		set(&out[i], sl.keepCopy(sl.idx[i*crypto.BlindIndexSize:][:indexLen]))
	}
}

// keepCopy copies b into the arena and returns the arena's copy.
func (sl *sealer) keepCopy(b []byte) []byte {
	return sl.keep(append(sl.room(len(b)), b...))
}

// stopWriter waits until every chunk handed over is written; it returns the
// first error of the writes. Safe to call more than once, or without a writer.
func (in *intake) stopWriter() error {
	if in.chunks == nil {
		return nil
	}
	close(in.chunks)
	in.chunks = nil
	in.writerErr = <-in.writerDone
	return in.writerErr
}

// flush hands the current chunk to the writer and goes on with a free one.
func (in *intake) flush() error {
	if len(in.chunk) == 0 {
		return nil
	}
	// A failed write shows at stopWriter (the writer keeps draining).
	t := time.Now()
	in.chunks <- in.chunk
	in.lanes.readWait += time.Since(t)
	select {
	case c := <-in.free:
		in.chunk = c
	default:
		in.chunk = make([]validate.Record, 0, cap(in.chunk))
	}
	return nil
}

// one encrypts a record's personal fields, the three in one ciphertext (AAD
// binds it to batch, seq and the combined layout's label; see fields.go).
// Its blind indexes and dedupe key come after, a chunk at a time (indexes).
func (sl *sealer) one(r *validate.Record) (spool.Record, error) {
	out := spool.Record{Seq: r.Seq, AccountKind: r.AccountKind, AmountFen: r.AmountFen, Remark: r.Remark} // the stage sets the state
	if ro := sl.reissue; ro != nil && r.Seq >= 1 && r.Seq <= len(ro) {
		out.ReissueOfSeq = ro[r.Seq-1]
	}
	var err error
	sl.plain = appendFields(sl.plain[:0], r.Name, r.IDNumber, r.Account)
	out.FieldsEnc, err = sl.encrypt(sl.plain, fieldsLabel, r.Seq)
	clear(sl.plain)
	if err != nil {
		return out, err
	}
	return out, nil
}

// sealedRecordBytes is about what one record takes in the arena: the
// combined ciphertext (about 50 bytes of fields + key id, nonce and tag)
// and three 16-byte indexes.
const sealedRecordBytes = 192

// room returns an empty slice of the arena with room for n bytes (a new
// arena when the chunk's fields were longer than estimated).
func (sl *sealer) room(n int) []byte {
	if cap(sl.arena)-len(sl.arena) < n {
		sl.arena = make([]byte, 0, max(n, 64<<10))
	}
	return sl.arena[len(sl.arena):len(sl.arena)]
}

// keep takes b, which was built in room's slice, into the arena.
func (sl *sealer) keep(b []byte) []byte {
	sl.arena = sl.arena[:len(sl.arena)+len(b)]
	return b[:len(b):len(b)]
}

func (sl *sealer) encrypt(plain []byte, field string, seq int) ([]byte, error) {
	ct, err := sl.fc.EncryptTo(sl.room(len(plain)+128), plain, sl.aad(field, seq))
	if err != nil {
		return nil, err
	}
	if unsafe.SliceData(ct) != unsafe.SliceData(sl.arena[len(sl.arena):cap(sl.arena)]) {
		return ct, nil // the cipher needed more than 128 bytes of overhead (never with our keyring): its own slice
	}
	return sl.keep(ct), nil
}

// FieldAAD is the additional data binding a personal field's ciphertext to its
// place: batch id, seq and field name. Readers pass the same.
func FieldAAD(dst []byte, batchID string, seq int, field string) []byte {
	dst = append(dst, batchID...)
	dst = append(dst, 0)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, 0)
	return append(dst, field...)
}

func (sl *sealer) aad(field string, seq int) []byte {
	sl.buf = FieldAAD(sl.buf[:0], sl.batchID, seq, field)
	return sl.buf
}

// DedupeKey identifies (person, subsidy, period) for money rule 4; it is
// derived from the keyed ID index, so it is itself keyed.
func DedupeKey(idIndex []byte, subsidy, period string) []byte {
	sum := sm3.Sum(appendDedupeMessage(nil, idIndex, subsidy, period))
	return sum[:indexLen]
}

// appendDedupeMessage appends what a dedupe key hashes: the ID index, 0,
// the subsidy code, 0, the period.
func appendDedupeMessage(dst, idIndex []byte, subsidy, period string) []byte {
	dst = append(dst, idIndex...)
	dst = append(dst, 0)
	dst = append(dst, subsidy...)
	dst = append(dst, 0)
	return append(dst, period...)
}

func (in *intake) hashString(s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	in.hash.Write(n[:])
	io.WriteString(in.hash, s)
}

func (in *intake) hashHeader() {
	h := &in.h
	for _, s := range []string{"yktgw-batch-v1", h.BatchID, h.Tenant, h.Bank, h.Subsidy.Code, h.Subsidy.Name, h.Period, h.Memo,
		strconv.FormatInt(in.count, 10), strconv.FormatInt(in.fen, 10)} {
		in.hashString(s)
	}
	if ro := h.ReissueOf; ro != nil {
		in.hashString("reissue_of")
		in.hashString(ro.BatchID)
		in.hashString(joinInts(ro.Seqs))
	}
}

func (in *intake) reissueOf() string {
	if in.h.ReissueOf == nil {
		return ""
	}
	return in.h.ReissueOf.BatchID
}

// checkReissue checks a reissue header: the original batch is one the
// token may see (else: as if it did not exist), of the same subsidy and
// period, and seqs name one original record per record of this batch, each
// once. That each original is FAILED and not reissued yet (money rule 6)
// is checked again inside the spool's commit.
func (in *intake) checkReissue() {
	ro := in.h.ReissueOf
	if ro == nil {
		return
	}
	if ro.BatchID == "" || ro.BatchID == in.h.BatchID {
		in.fail("reissue_of.batch_id", "reissue.batch", "须指明被重发的原批次 (name the original batch)")
		return
	}
	orig, err := in.g.store.Batch(in.ctx, ro.BatchID)
	if err != nil || !in.who.Covers(orig.Tenant) {
		in.fail("reissue_of.batch_id", "reissue.batch_not_found", "无此原批次 (no such original batch)")
		return
	}
	if orig.SubsidyCode != in.h.Subsidy.Code || orig.Period != in.h.Period {
		in.fail("reissue_of.batch_id", "reissue.other_payment", "重发须与原批次同一补贴、同一期间 (a reissue pays the same subsidy and period as the original)")
	}
	if int64(len(ro.Seqs)) != in.count {
		in.fail("reissue_of.seqs", "reissue.seqs_count", "seqs 须与本批次笔数一致，第 n 笔重发 seqs[n-1] (one original seq per record)")
	}
	seen := map[int]bool{}
	for _, s := range ro.Seqs {
		if s < 1 || s > orig.TotalCount {
			in.fail("reissue_of.seqs", "reissue.seq_range", "原序号 "+strconv.Itoa(s)+" 不在原批次中 (not a record of the original batch)")
		} else if seen[s] {
			in.fail("reissue_of.seqs", "reissue.seq_twice", "原序号 "+strconv.Itoa(s)+" 重复 (an original named twice)")
		}
		seen[s] = true
	}
}

// hashRecord adds a record to the content hash: seq, 0, amount, then each
// field as hashString writes it, in one Write (the same bytes, so the same
// hash as ever: a resubmission compares with hashes stored long ago).
func (in *intake) hashRecord(r *validate.Record) {
	b := strconv.AppendInt(in.buf[:0], int64(r.Seq), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, r.AmountFen, 10)
	for _, s := range [...]string{r.Name, r.IDNumber, r.Account, r.AccountKind, r.Remark} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	in.hash.Write(b)
	clear(b) // personal data
	in.buf = b
}

// finish runs the batch-level checks and commits, or refuses.
func (in *intake) finish() (SubmitResult, error) {
	g := in.g
	if in.headerOK {
		in.seqs.Finish(&in.issues)
		in.totals.Check(in.count, in.fen, &in.issues)
	}
	sum := in.hash.Sum(nil)
	if in.existed != nil {
		return in.same(in.existed, sum)
	}
	if in.issues.HasErrors() {
		return in.refused(), nil
	}
	if err := in.flush(); err != nil {
		return SubmitResult{}, err
	}
	if err := in.stopWriter(); err != nil {
		return SubmitResult{}, &spoolError{fmt.Errorf("gateway: stage records: %w", err)}
	}
	b := &spool.Batch{BatchID: in.h.BatchID, Tenant: in.h.Tenant, Bank: in.h.Bank, SubsidyCode: in.h.Subsidy.Code,
		SubsidyName: in.h.Subsidy.Name, Period: in.h.Period, Memo: in.h.Memo, TotalCount: int(in.count), TotalFen: in.fen,
		ContentHash: sum, SubmittedBy: in.who.TokenID, ReissueOf: in.reissueOf()}
	validation := in.issues.Warnings()
	var all []validate.Issue
	tf := time.Now() // Finalize, then the queue step: "finalize" in the log
	res, err := in.stage.Finalize(in.ctx, b, in.who.TokenID, func(r spool.FinalizeResult) []byte {
		all = append(append([]validate.Issue{}, validation...), guardWarnings(r)...)
		if len(all) == 0 {
			return nil
		}
		j, _ := json.Marshal(all)
		return j
	})
	if errors.Is(err, spool.ErrConflict) {
		// Another submission of the same batch_id won the race.
		if prev, gerr := g.store.Batch(in.ctx, b.BatchID); gerr == nil {
			return in.same(prev, sum)
		}
		return errorResult(StatusConflict, validate.Issue{Field: "batch_id", Code: "batch.conflict", Message: "批次号已被使用 (batch_id already used)"}), nil
	}
	if err != nil {
		return SubmitResult{}, err
	}
	if len(res.Conflicts) > 0 {
		for _, c := range res.Conflicts {
			in.issues.Add(conflictIssue(c))
		}
		return in.refused(), nil
	}
	in.finalized = true
	hit(FPIntakeCommitted)
	if err := g.store.TransitionBatch(in.ctx, b.BatchID, spool.BatchReceived, spool.BatchQueued, spool.Event{Actor: "system"}); err != nil {
		// The batch is committed; the queue step is redone at start-up.
		g.log.Warn("intake: queue", "batch", b.BatchID, "err", err)
	} else {
		select {
		case g.dispatchKick <- struct{}{}:
		default:
		}
	}
	lt := &in.lanes
	g.log.Info("batch accepted", "batch", b.BatchID, "tenant", b.Tenant, "bank", b.Bank, "records", b.TotalCount, "fen", b.TotalFen, "by", in.who,
		slog.Group("lanes", "chunks", lt.chunks, "read_wait", lt.readWait, "seal_busy", lt.sealBusy, "seal_wait", lt.sealWait,
			"write_busy", lt.writeBusy, "write_wait", lt.writeWait, "finalize", time.Since(tf)))
	stored, err := g.store.Batch(in.ctx, b.BatchID)
	if err != nil {
		return SubmitResult{}, err
	}
	view := g.view(in.ctx, stored, false)
	view.WarningsDropped = in.issues.DroppedWarnings
	return SubmitResult{Status: StatusCreated, Batch: view}, nil
}

func guardWarnings(res spool.FinalizeResult) []validate.Issue {
	var out []validate.Issue
	for _, sa := range res.SharedAccounts {
		for _, s := range sa.Seqs {
			out = append(out, validate.Issue{Seq: s, Field: "account", Code: "account.shared",
				Message: "同一账号对应多个身份证号，涉及序号 " + joinInts(sa.Seqs) + " (one account, several ID numbers)", Severity: validate.Warning})
		}
	}
	for _, b := range res.BadAccounts {
		out = append(out, validate.Issue{Seq: b.Seq, Field: "account", Code: "account.reported_bad",
			Message: "银行曾报告该账户异常: " + banks.Reason(b.Reason).LabelZH() + " (a bank reported this account " + b.Reason + " before)", Severity: validate.Warning})
	}
	for _, s := range res.PreviouslyFailed {
		out = append(out, validate.Issue{Seq: s, Field: "id_number", Code: "id_number.previously_failed",
			Message: "该人员本期此项补贴曾发放失败，如为重发请使用 reissue_of (earlier payment failed; use reissue_of for a reissue)", Severity: validate.Warning})
	}
	return out
}

func joinInts(v []int) string {
	var b []byte
	for i, n := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

func conflictIssue(c spool.Conflict) validate.Issue {
	switch c.Kind {
	case "reissue_unknown":
		return validate.Issue{Seq: c.Seq, Field: "reissue_of.seqs", Code: "reissue.unknown_record",
			Message: "原批次无序号 " + strconv.Itoa(c.OtherSeq) + " (no such original record)", Severity: validate.Error}
	case "reissue_not_failed":
		return validate.Issue{Seq: c.Seq, Field: "reissue_of.seqs", Code: "reissue.not_failed",
			Message: "原记录 " + strconv.Itoa(c.OtherSeq) + " 状态为 " + string(c.OtherState) + "，只有发放失败的记录可以重发 (only a FAILED record can be reissued; PAID and UNKNOWN never)", Severity: validate.Error}
	case "reissue_twice":
		return validate.Issue{Seq: c.Seq, Field: "reissue_of.seqs", Code: "reissue.already_reissued",
			Message: "原记录 " + strconv.Itoa(c.OtherSeq) + " 已重发过 (the original was reissued already)", Severity: validate.Error}
	}
	if c.Kind == "in_batch" {
		return validate.Issue{Seq: c.Seq, Field: "id_number", Code: "id_number.duplicate_in_batch",
			Message: "同一人员同一补贴在本批次重复，首次出现于序号 " + strconv.Itoa(c.OtherSeq) + " (same person twice in this batch)", Severity: validate.Error}
	}
	return validate.Issue{Seq: c.Seq, Field: "id_number", Code: "id_number.already_paid",
		Message: "同一人员同一补贴同一期间已有 " + string(c.OtherState) + " 记录 (already " + string(c.OtherState) + " in another batch for this subsidy and period)", Severity: validate.Error}
}

func (in *intake) refused() SubmitResult {
	return SubmitResult{Status: StatusInvalid, Errors: &ErrorBody{Errors: in.issues.Errors(), ErrorsDropped: in.issues.Dropped, Warnings: in.issues.Warnings()}}
}

// same answers a batch_id seen before: same content, the first answer (200);
// other content, a conflict (409). Money rule 3.
func (in *intake) same(prev *spool.Batch, sum []byte) (SubmitResult, error) {
	if !in.who.Covers(prev.Tenant) || !bytes.Equal(prev.ContentHash, sum) {
		return errorResult(StatusConflict, validate.Issue{Field: "batch_id", Code: "batch.conflict",
			Message: "批次号已被使用且内容不同 (batch_id already used with other content)"}), nil
	}
	return SubmitResult{Status: StatusSame, Batch: in.g.view(in.ctx, prev, false)}, nil
}

func decodeInt(raw json.RawMessage) (int64, error) {
	return validate.DecodeAmountFen(raw) // the same strict JSON-integer rule
}

func validBatchID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func validPeriod(s string) bool {
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	switch len(s) {
	case 4:
		return digits(s)
	case 7:
		if s[4] != '-' || !digits(s[:4]) || !digits(s[5:]) {
			return false
		}
		m, _ := strconv.Atoi(s[5:])
		return m >= 1 && m <= 12
	}
	return false
}

// view builds the API view of a stored batch.
func (g *Gateway) view(ctx context.Context, b *spool.Batch, withCounts bool) *BatchView {
	v := &BatchView{BatchID: b.BatchID, Tenant: b.Tenant, Bank: b.Bank, Subsidy: SubsidyJSON{b.SubsidyCode, b.SubsidyName},
		Period: b.Period, Memo: b.Memo, State: b.State, TotalCount: b.TotalCount, TotalFen: b.TotalFen,
		Warnings: []validate.Issue{}, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt, ReissueOf: b.ReissueOf}
	if len(b.Warnings) > 0 {
		if err := json.Unmarshal(b.Warnings, &v.Warnings); err != nil {
			g.log.Warn("batch warnings unreadable", "batch", b.BatchID, "err", err)
		}
	}
	if withCounts {
		counts, err := g.store.RecordCounts(ctx, b.BatchID)
		if err != nil {
			g.log.Warn("record counts", "batch", b.BatchID, "err", err)
		}
		for _, c := range counts {
			v.Records = append(v.Records, StateCountJSON{Status: string(c.State), Count: c.Count, Fen: c.Fen})
		}
	}
	return v
}

var _ slog.LogValuer = (*Principal)(nil)
