package sim

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/smx509"

	"yktgw/banks/format"
	"yktgw/crypto"
)

const (
	pendingDir  = ".sim/pending"
	rejectedDir = "rejected"
	paidMessage = "交易成功"
)

// outcome is the deterministic fate of one record.
type outcome struct {
	code, message, serial string
	paid                  bool
}

// outcome decides (Seed, bank batch number, seq) -> PAID or a failure code,
// with a bank serial. Uniform in [0,1) from a 64-bit FNV-1a hash; the
// probability is a float, the money never is.
func (s *Sim) outcome(bbn string, seq int) outcome {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(s.cfg.Seed))
	h.Write(b[:])
	h.Write([]byte(bbn))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], uint64(seq))
	h.Write(b[:])
	x := h.Sum64()
	serial := fmt.Sprintf("%016x", x)
	u := float64(x>>11) / (1 << 53)
	if u >= s.cfg.FailRate {
		return outcome{code: s.cfg.Profile.PaidCodes[0], message: paidMessage, serial: serial, paid: true}
	}
	// A second, independent draw picks the failure code.
	y := x*0x9E3779B97F4A7C15 ^ (x >> 29)
	code := s.reasons[y%uint64(len(s.reasons))]
	return outcome{code: code, message: s.messageFor(code), serial: serial}
}

// defaultMessages are the texts of DefaultReasons (and of codes a profile
// maps), worded as banks word them.
var defaultMessages = map[string]string{
	"E101": "户名与账号不符",
	"E103": "卡或帐号不存在",
	"E104": "卡或帐号已销户",
	"E105": "账户冻结",
	"E107": "久悬户",
}

func (s *Sim) messageFor(code string) string {
	if r, ok := s.cfg.Profile.CodeMap[code]; ok {
		return r.LabelZH()
	}
	if m, ok := defaultMessages[code]; ok {
		return m
	}
	return "交易失败"
}

func (s *Sim) result(bbn string, r format.Record) format.Result {
	o := s.outcome(bbn, r.Seq)
	return format.Result{
		Seq: r.Seq, Name: r.Name, Account: r.Account, AmountFen: r.AmountFen, OrigFen: r.AmountFen,
		IDNumber: r.IDNumber, Remark: r.Remark, Code: o.code, Message: o.message, BankSerial: o.serial, Paid: o.paid,
	}
}

// pendingReturn describes a sealed return file waiting for its delay, kept
// beside it as <name>.json so a restarted simulator can finish the job.
type pendingReturn struct {
	Name        string    `json:"name"`
	BankBatchNo string    `json:"bank_batch_no"`
	Due         time.Time `json:"due"`
	Records     int       `json:"records"`
	Paid        int       `json:"paid"`
	Failed      int       `json:"failed"`
	PaidFen     int64     `json:"paid_fen"`
	FailedFen   int64     `json:"failed_fen"`
	Malformed   bool      `json:"malformed"`
	Duplicate   bool      `json:"duplicate"`
}

// process handles one file that appeared under its final name in the
// outbound directory.
func (s *Sim) process(name string) {
	rp := path.Join(s.outDir, name)
	raw, err := s.readAll(rp, crypto.DefaultMaxBytes+(1<<20))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	log := s.log.With("file", name)
	if err != nil {
		log.Error("outbound file not readable; left in place", "err", err)
		return
	}
	sum := sm3.Sum(raw)
	digest := hex.EncodeToString(sum[:])
	s.mu.Lock()
	prev, seen := s.st.Files[name]
	same := s.fileSM3[name] == digest
	s.mu.Unlock()
	if seen && prev != "rejected" && same {
		return // the same bytes under the same name: nothing new arrived
	}
	log = log.With("sm3", digest[:16])

	var plain bytes.Buffer
	if err := crypto.OpenAndVerify(&plain, bytes.NewReader(raw), s.cfg.Bank, s.cfg.Gateway, s.sealOpt); err != nil {
		s.reject(name, digest, "open and verify", err)
		return
	}
	raw = nil
	p := s.cfg.Profile
	text := plain.Bytes()
	// Pass 1: the file is well formed; its bank batch number.
	summary, err := p.Outbound.ParseRecords(bytes.NewReader(text), func(format.Record) error { return nil })
	if err != nil {
		s.reject(name, digest, "parse", parseProblem(err))
		return
	}
	if summary.Count > p.MaxRecordsPerFile {
		s.reject(name, digest, "parse", fmt.Errorf("%d records, more than max_records_per_file %d", summary.Count, p.MaxRecordsPerFile))
		return
	}
	bbn := summary.BankBatchNo
	if bbn == "" {
		bbn = s.nameBBN(name)
	}
	if bbn == "" {
		s.reject(name, digest, "parse", errors.New("no bank batch number in the file or its name"))
		return
	}
	log = log.With("bank_batch_no", bbn)

	s.mu.Lock()
	if s.st.AcceptedByBatchNo[bbn] > 0 {
		s.st.Duplicates++
		s.st.DuplicatesByBatchNo[bbn]++
		s.st.Files[name] = "duplicate"
		s.fileSM3[name] = digest
		s.saveLocked()
		s.mu.Unlock()
		log.Warn("duplicate: bank batch number already accepted; not paid again", "records", summary.Count)
		return
	}
	s.st.Accepted++
	s.st.AcceptedByBatchNo[bbn]++
	s.st.Files[name] = "accepted"
	s.fileSM3[name] = digest
	f := s.f
	if f.MalformedReturn > 0 {
		s.f.MalformedReturn--
	}
	if f.WithholdReturns {
		s.st.WithheldReturns++
	}
	s.saveLocked()
	s.mu.Unlock()
	log.Info("accepted", "records", summary.Count, "total_fen", summary.TotalFen)
	if f.WithholdReturns {
		log.Warn("fault: return withheld")
		return
	}

	// Pass 2: outcomes and sums (the return header states them first).
	pr := pendingReturn{BankBatchNo: bbn, Malformed: f.MalformedReturn > 0, Duplicate: f.DuplicateReturn}
	rs := format.Summary{BankBatchNo: bbn}
	if _, err := p.Outbound.ParseRecords(bytes.NewReader(text), func(r format.Record) error {
		o := s.outcome(bbn, r.Seq)
		rs.Count++
		rs.TotalFen += r.AmountFen
		if o.paid {
			rs.PaidCount++
			rs.PaidFen += r.AmountFen
		} else {
			rs.FailedCount++
			rs.FailedFen += r.AmountFen
		}
		return nil
	}); err != nil {
		log.Error("second pass failed", "err", parseProblem(err))
		return
	}
	pr.Records, pr.Paid, pr.Failed, pr.PaidFen, pr.FailedFen = rs.Count, rs.PaidCount, rs.FailedCount, rs.PaidFen, rs.FailedFen
	pr.Name, err = returnName(p.FeedbackPattern, bbn)
	if err != nil {
		log.Error("return file name", "err", err)
		return
	}

	// Pass 3: render the return file, streaming the records once more.
	var out bytes.Buffer
	stated := rs
	if pr.Malformed {
		stated.Count++
		stated.TotalFen++
		stated.PaidCount++
		stated.PaidFen++
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	hdr := format.Batch{BankBatchNo: bbn, Date: time.Now().In(loc), Count: stated.Count, TotalFen: stated.TotalFen}
	err = p.Return.RenderResults(&out, hdr, stated, s.results(text, bbn))
	var fe format.FieldError
	if err != nil && !(pr.Malformed && errors.As(err, &fe) && fe.Code == format.CodeRecordMismatch) {
		log.Error("return file not rendered", "err", parseProblem(err))
		return
	}
	body := out.Bytes()
	if pr.Malformed {
		body = truncateLastLine(body)
	}
	var sealed bytes.Buffer
	if err := crypto.SignAndSeal(&sealed, bytes.NewReader(body), s.cfg.Bank, []*smx509.Certificate{s.cfg.Gateway}, s.sealOpt); err != nil {
		log.Error("return file not sealed", "err", err)
		return
	}
	pr.Due = time.Now().Add(s.cfg.Delay + f.LateReturn)
	if err := s.stage(pr, sealed.Bytes()); err != nil {
		log.Error("return file not staged", "err", err)
		return
	}
	if f.LateReturn > 0 {
		log.Warn("fault: late return", "extra_delay", f.LateReturn)
	}
	s.schedule(pr)
}

// results yields the return lines for the records of an outbound file.
func (s *Sim) results(text []byte, bbn string) iter.Seq2[format.Result, error] {
	return func(yield func(format.Result, error) bool) {
		stop := errors.New("stop")
		_, err := s.cfg.Profile.Outbound.ParseRecords(bytes.NewReader(text), func(r format.Record) error {
			if !yield(s.result(bbn, r), nil) {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(format.Result{}, err)
		}
	}
}

// truncateLastLine cuts the last non-empty line of b in half.
func truncateLastLine(b []byte) []byte {
	end := len(b)
	for end > 0 && (b[end-1] == '\n' || b[end-1] == '\r') {
		end--
	}
	start := bytes.LastIndexByte(b[:end], '\n') + 1
	return b[:start+(end-start)/2]
}

// parseProblem shortens layout errors for logs: problem count and the first
// problem's position and code, never the values (they may be personal data).
func parseProblem(err error) error {
	var pe format.ParseErrors
	if errors.As(err, &pe) && len(pe) > 0 {
		f := pe[0]
		return fmt.Errorf("%d problem(s), first: line %d record %d field %q: %s", len(pe), f.Line, f.Seq, f.Field, f.Code)
	}
	var fe format.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("line %d record %d field %q: %s", fe.Line, fe.Seq, fe.Field, fe.Code)
	}
	return err
}

// rejectGrace is how long a rejected file stays under its name before it
// is moved aside: the sender stats the file right after its rename, and a
// file vanishing under its feet would look like a lost upload.
// A variable only so that tests can shorten it.
var rejectGrace = 2 * time.Second

// reject counts a file that failed to open, verify or parse, and after
// rejectGrace moves it to rejected/ (unless it was replaced meanwhile) so
// it is never picked up again. It is not paid.
func (s *Sim) reject(name, digest, step string, cause error) {
	s.mu.Lock()
	s.st.Rejected++
	s.st.Files[name] = "rejected"
	s.fileSM3[name] = digest
	s.saveLocked()
	s.mu.Unlock()
	s.log.Warn("rejected: not paid", "file", name, "step", step, "err", cause)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(rejectGrace)
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		from := path.Join(s.outDir, name)
		if raw, err := s.readAll(from, crypto.DefaultMaxBytes+(1<<20)); err != nil {
			return
		} else if sum := sm3.Sum(raw); hex.EncodeToString(sum[:]) != digest {
			return // replaced meanwhile: the new file has its own fate
		}
		to := path.Join(rejectedDir, name)
		for i := 1; ; i++ {
			if _, err := s.root.Lstat(to); errors.Is(err, os.ErrNotExist) {
				break
			}
			to = path.Join(rejectedDir, name+"."+strconv.Itoa(i))
		}
		if err := s.root.Rename(from, to); err != nil {
			s.log.Error("rejected file not moved aside", "file", name, "err", err)
			return
		}
		s.log.Info("rejected file moved aside", "file", name, "to", to)
	}()
}

// stage writes the sealed return under .sim/pending (temporary name,
// fsync, rename) with its description beside it.
func (s *Sim) stage(pr pendingReturn, sealed []byte) error {
	meta, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	if err := s.writeFileSync(path.Join(pendingDir, pr.Name), sealed); err != nil {
		return err
	}
	return s.writeFileSync(path.Join(pendingDir, pr.Name+".json"), meta)
}

// writeFileSync writes name through a temporary name in the same directory,
// fsynced, then renamed: a reader sees all of it or nothing.
func (s *Sim) writeFileSync(name string, data []byte) error {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".part")
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = s.root.Remove(tmp)
		return err
	}
	return s.root.Rename(tmp, name)
}

// schedule writes pr's return file when it is due, unless the simulator
// stops first (then the next Start on the same root writes it).
func (s *Sim) schedule(pr pendingReturn) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(time.Until(pr.Due))
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if err := s.publish(pr); err != nil {
			s.log.Error("return file not written", "return_file", pr.Name, "bank_batch_no", pr.BankBatchNo, "err", err)
		}
	}()
}

// resumePending schedules the returns a previous run staged but did not
// write, due after Delay from now.
func (s *Sim) resumePending() {
	d, err := s.root.Open(pendingDir)
	if err != nil {
		return
	}
	ents, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := s.root.ReadFile(path.Join(pendingDir, e.Name()))
		if err != nil {
			continue
		}
		var pr pendingReturn
		if json.Unmarshal(b, &pr) != nil || pr.Name+".json" != e.Name() {
			continue
		}
		if _, err := s.root.Stat(path.Join(pendingDir, pr.Name)); err != nil {
			continue
		}
		pr.Due = time.Now().Add(s.cfg.Delay)
		s.log.Info("resuming staged return file", "return_file", pr.Name, "bank_batch_no", pr.BankBatchNo)
		s.schedule(pr)
	}
}

// publish moves a staged return file into the feedback directory (one
// rename: the gateway never sees part of it), writes the duplicate copy
// when asked, and counts it.
func (s *Sim) publish(pr pendingReturn) error {
	src := path.Join(pendingDir, pr.Name)
	dst := path.Join(s.fbDir, pr.Name)
	now := time.Now()
	_ = s.root.Chtimes(src, now, now)
	if _, err := s.root.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists in the feedback directory", pr.Name)
	}
	var data []byte
	if pr.Duplicate {
		var err error
		if data, err = s.root.ReadFile(src); err != nil {
			return err
		}
	}
	// The counters are saved before the rename, so whoever sees the file
	// (in this process or through sim-stats.json) sees it counted.
	s.mu.Lock()
	before := s.st
	s.st.ReturnsWritten++
	s.st.Records += pr.Records
	s.st.PaidRecords += pr.Paid
	s.st.FailedRecords += pr.Failed
	s.st.PaidFen += pr.PaidFen
	s.st.FailedFen += pr.FailedFen
	if pr.Malformed {
		s.st.MalformedReturns++
	}
	s.saveLocked()
	if err := s.root.Rename(src, dst); err != nil {
		s.st = before
		s.saveLocked()
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	_ = s.root.Remove(src + ".json")
	s.log.Info("return file written", "return_file", pr.Name, "bank_batch_no", pr.BankBatchNo,
		"records", pr.Records, "paid", pr.Paid, "failed", pr.Failed, "paid_fen", pr.PaidFen, "failed_fen", pr.FailedFen,
		"malformed", pr.Malformed)
	if pr.Duplicate {
		dupName, err := returnName(s.cfg.Profile.FeedbackPattern, pr.BankBatchNo+"_DUP")
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.st.DuplicateReturns++
		s.saveLocked()
		err = s.writeFileSync(path.Join(s.fbDir, dupName), data)
		if err != nil {
			s.st.DuplicateReturns--
			s.saveLocked()
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("duplicate copy: %w", err)
		}
		s.log.Warn("fault: return file written twice", "return_file", pr.Name, "copy", dupName)
	}
	return nil
}

// returnName makes a return file name matching the profile's feedback
// pattern: the first '*' becomes stem (made file-name safe), further '*'
// nothing, '?' a '0', a character class its first character, '\x' x.
func returnName(pattern, stem string) (string, error) {
	var b strings.Builder
	starDone := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*':
			if !starDone {
				b.WriteString(safeName(stem))
				starDone = true
			}
		case '?':
			b.WriteByte('0')
		case '\\':
			if i+1 < len(pattern) {
				i++
				b.WriteByte(pattern[i])
			}
		case '[':
			j := strings.IndexByte(pattern[i+1:], ']')
			if j < 1 || pattern[i+1] == '^' {
				return "", fmt.Errorf("sim: feedback pattern %q: character class not supported", pattern)
			}
			b.WriteByte(pattern[i+1])
			i += j + 1
		default:
			b.WriteByte(c)
		}
	}
	name := b.String()
	if !starDone {
		return "", fmt.Errorf("sim: feedback pattern %q has no '*' to carry the bank batch number", pattern)
	}
	if ok, err := path.Match(pattern, name); err != nil || !ok {
		return "", fmt.Errorf("sim: feedback pattern %q: made name %q does not match it", pattern, name)
	}
	return name, nil
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)(?::[0-9]+)?\}`)

// batchNoFromName returns a function taking the bank batch number out of
// an outbound file name made from the profile's file name template (for
// layouts that do not carry it inside the file). It returns "" when the
// name does not fit the template.
func batchNoFromName(tmpl string) func(string) string {
	var re strings.Builder
	re.WriteString("^")
	last := 0
	has := false
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(tmpl, -1) {
		re.WriteString(regexp.QuoteMeta(tmpl[last:m[0]]))
		if tmpl[m[2]:m[3]] == "bank_batch_no" && !has {
			re.WriteString(`([A-Za-z0-9._-]+?)`)
			has = true
		} else {
			re.WriteString(`[A-Za-z0-9._-]*?`)
		}
		last = m[1]
	}
	re.WriteString(regexp.QuoteMeta(tmpl[last:]))
	re.WriteString("$")
	r, err := regexp.Compile(re.String())
	if err != nil || !has || !utf8.ValidString(tmpl) {
		return func(string) string { return "" }
	}
	return func(name string) string {
		m := r.FindStringSubmatch(name)
		if m == nil {
			return ""
		}
		return m[1]
	}
}
