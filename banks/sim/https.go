package sim

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emmansun/gmsm/sm3"

	bankhttps "yktgw/banks/https"
	"yktgw/crypto"
)

// HTTPSConfig configures the simulator's HTTPS bank (NewHTTPS): the same
// bank as the SFTP one (Config: profile, keys, outcomes, delay; Listen is
// the HTTPS address; the SSH fields are unused), speaking the API of
// banks/https over mutual TLS with SM2-signed requests and answers.
type HTTPSConfig struct {
	Config
	// TLS are the transport certificates (SetupHTTPSTLS).
	TLS *HTTPSTLS
	// DeliveryDir is where POSTed batches are stored, relative to Root
	// (default Config.OutboundDir: they are processed like uploaded files).
	// Another directory stores them without processing (conformance tests
	// send random bytes).
	DeliveryDir string
	// ArchiveDir is where acknowledged (or successfully pushed) return
	// files go (default <FeedbackDir>/archive).
	ArchiveDir string
	// Callback, when set, is push mode: it returns the URL of the gateway's
	// callback (http(s)://host:port/v1/banks/<code>/callback), "" while not
	// known yet. Return files are POSTed there, signed, until the gateway
	// answers 200 with its valid signature; then they are archived.
	Callback func() string
	// CallbackTLS is the client TLS config for an https callback URL.
	CallbackTLS *tls.Config
	// SignerID is the SM2 signer id of both sides' signatures (default
	// crypto.DefaultSignerID).
	SignerID string
	// MaxClockSkew bounds request timestamps (default 5m).
	MaxClockSkew time.Duration
}

// HTTPSFaults are failures of the HTTPS bank (SetHTTPSFaults). Counters
// are used up one by one.
type HTTPSFaults struct {
	// HangAfterAccept: the next N new batches are stored and accepted
	// (processed and paid as usual), then no answer is sent until the
	// client gives up or HangFor passes; the connection is then dropped.
	HangAfterAccept int
	// HangFor bounds a hang (default 2 minutes).
	HangFor time.Duration
	// Unavailable: the next N batch POSTs are answered 503 (signed)
	// without storing anything.
	Unavailable int
}

// HTTPSStats counts what only the HTTPS bank sees.
type HTTPSStats struct {
	Requests       int            `json:"requests"`
	Refused        map[string]int `json:"refused"`         // by reason: signature, replay, tls
	Repeats        int            `json:"repeats"`         // batch POSTs answered from the idempotency index
	Conflicts      int            `json:"conflicts"`       // 409s
	Hung           int            `json:"hung"`            // HangAfterAccept used
	Unavailable    int            `json:"unavailable"`     // 503s from the Unavailable fault
	Pushed         int            `json:"pushed"`          // return files the gateway's callback acknowledged
	PushAttempts   int            `json:"push_attempts"`   // callback POSTs made
	PushRejections map[int]int    `json:"push_rejections"` // callback answers other than 200, by status (0: no answer)
}

// HTTPSBank is a running simulated HTTPS bank.
type HTTPSBank struct {
	*Sim
	hcfg    HTTPSConfig
	delDir  string
	archDir string
	srv     *http.Server
	client  *http.Client

	hmu    sync.Mutex
	hf     HTTPSFaults
	hst    HTTPSStats
	index  map[string]indexEntry // bank batch number -> what was delivered under it
	nonces map[string]time.Time  // seen request nonces, until they age out
	hangs  chan struct{}         // closed by Close: ends hangs
}

// indexEntry is the bank's idempotency record of one bank batch number.
type indexEntry struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	SM3        string    `json:"sm3"`
	ReceivedAt time.Time `json:"received_at"`
}

const httpsIndexFile = ".sim/https-index.json"

// NewHTTPS checks cfg and opens Root; Start listens.
func NewHTTPS(cfg HTTPSConfig) (*HTTPSBank, error) {
	if cfg.TLS == nil {
		return nil, errors.New("sim: https: TLS certificates required (SetupHTTPSTLS)")
	}
	s, err := newSim(cfg.Config, false)
	if err != nil {
		return nil, err
	}
	if cfg.DeliveryDir == "" {
		cfg.DeliveryDir = s.cfg.OutboundDir
	}
	if cfg.ArchiveDir == "" {
		cfg.ArchiveDir = path.Join(s.cfg.FeedbackDir, "archive")
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = 5 * time.Minute
	}
	if cfg.SignerID == "" {
		cfg.SignerID = crypto.DefaultSignerID
	}
	b := &HTTPSBank{Sim: s, hcfg: cfg, delDir: rel(cfg.DeliveryDir), archDir: rel(cfg.ArchiveDir),
		index: map[string]indexEntry{}, nonces: map[string]time.Time{}, hangs: make(chan struct{}),
		hst: HTTPSStats{Refused: map[string]int{}, PushRejections: map[int]int{}}}
	b.log = s.log.With("channel", "https")
	b.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.CallbackTLS}}
	return b, nil
}

// Start listens (TLS), serves the bank API and processes batches until
// ctx ends or Close; in push mode it also pushes return files. It returns
// the listen address.
func (b *HTTPSBank) Start(ctx context.Context) (string, error) {
	s := b.Sim
	s.mu.Lock()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.mu.Unlock()
		return "", fmt.Errorf("sim: https: listen: %w", err)
	}
	if err := s.startLocked(ctx, ln); err != nil {
		s.mu.Unlock()
		ln.Close()
		return "", err
	}
	for _, d := range []string{b.delDir, b.archDir} {
		if err := s.root.MkdirAll(d, 0o755); err != nil {
			s.mu.Unlock()
			return "", fmt.Errorf("sim: https: mkdir %s: %w", d, err)
		}
	}
	s.mu.Unlock()
	if raw, err := s.root.ReadFile(httpsIndexFile); err == nil {
		if err := json.Unmarshal(raw, &b.index); err != nil {
			return "", fmt.Errorf("sim: https: %s: %w", httpsIndexFile, err)
		}
	}
	b.srv = &http.Server{Handler: b.handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelDebug)}
	tln := tls.NewListener(ln, b.hcfg.TLS.ServerConfig())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = b.srv.Serve(tln)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		_ = b.srv.Close()
	}()
	if b.hcfg.Callback != nil {
		s.wg.Add(1)
		go b.pusher()
	}
	mode := "poll"
	if b.hcfg.Callback != nil {
		mode = "push"
	}
	b.log.Info("https bank simulator listening", "addr", ln.Addr().String(), "root", s.cfg.Root, "delivery_dir", b.delDir,
		"feedback_dir", s.fbDir, "feedback", mode, "fail_rate", s.cfg.FailRate, "seed", s.cfg.Seed)
	return ln.Addr().String(), nil
}

// Close stops serving (in-flight requests and hangs are cut) and
// processing. It is idempotent.
func (b *HTTPSBank) Close() error {
	b.hmu.Lock()
	select {
	case <-b.hangs:
	default:
		close(b.hangs)
	}
	b.hmu.Unlock()
	if b.srv != nil {
		_ = b.srv.Close()
	}
	return b.Sim.Close()
}

// SetHTTPSFaults replaces the HTTPS faults in force.
func (b *HTTPSBank) SetHTTPSFaults(f HTTPSFaults) {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	b.hf = f
	b.log.Info("https faults set", "hang_after_accept", f.HangAfterAccept, "hang_for", f.HangFor, "unavailable", f.Unavailable)
}

// HTTPSStats returns a snapshot of the HTTPS counters.
func (b *HTTPSBank) HTTPSStats() HTTPSStats {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	st := b.hst
	st.Refused = cloneMap(b.hst.Refused)
	st.PushRejections = make(map[int]int, len(b.hst.PushRejections))
	for k, v := range b.hst.PushRejections {
		st.PushRejections[k] = v
	}
	return st
}

// DeliveryDir and ArchiveDir are the directories (relative to Root) of
// stored batches and of acknowledged return files.
func (b *HTTPSBank) DeliveryDir() string { return b.delDir }
func (b *HTTPSBank) ArchiveDir() string  { return b.archDir }

func (b *HTTPSBank) uid() []byte { return []byte(b.hcfg.SignerID) }

func (b *HTTPSBank) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /batches/{no}", b.postBatch)
	mux.HandleFunc("GET /batches/{no}", b.getBatch)
	mux.HandleFunc("GET /feedback", b.listFeedback)
	mux.HandleFunc("GET /feedback/{id}", b.getFeedback)
	mux.HandleFunc("POST /feedback/{id}/ack", b.ackFeedback)
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		b.answerJSON(w, r, 200, map[string]string{"status": "ok"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, crypto.DefaultMaxBytes+(1<<20)+1))
		if err != nil {
			return
		}
		if len(body) > crypto.DefaultMaxBytes+(1<<20) {
			b.answerErr(w, r, 413, "too_large", "body too large")
			return
		}
		b.hmu.Lock()
		b.hst.Requests++
		b.hmu.Unlock()
		sr, err := bankhttps.VerifyRequest(r, body, b.cfg.Gateway, b.uid(), time.Now(), b.hcfg.MaxClockSkew)
		if err != nil {
			b.refused("signature")
			b.log.Warn("request refused: signature", "method", r.Method, "path", r.URL.Path, "err", err)
			b.answerErr(w, r, 401, "bad_signature", err.Error())
			return
		}
		if !b.freshNonce(sr.Nonce) {
			b.refused("replay")
			b.answerErr(w, r, 409, "replayed_nonce", "nonce already used")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		mux.ServeHTTP(w, r)
	})
}

func (b *HTTPSBank) refused(why string) {
	b.hmu.Lock()
	b.hst.Refused[why]++
	b.hmu.Unlock()
}

// freshNonce remembers a nonce for twice the clock skew window (after that
// its timestamp is refused anyway).
func (b *HTTPSBank) freshNonce(n string) bool {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	now := time.Now()
	if len(b.nonces) > 10000 {
		for k, t := range b.nonces {
			if now.Sub(t) > 2*b.hcfg.MaxClockSkew {
				delete(b.nonces, k)
			}
		}
	}
	if _, seen := b.nonces[n]; seen {
		return false
	}
	b.nonces[n] = now
	return true
}

func (b *HTTPSBank) answer(w http.ResponseWriter, r *http.Request, status int, ctype string, body []byte) {
	w.Header().Set("Content-Type", ctype)
	bankhttps.WriteSigned(w, r, b.cfg.Bank.Key, b.uid(), time.Now(), status, body)
}

func (b *HTTPSBank) answerJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, _ := json.Marshal(v)
	b.answer(w, r, status, "application/json", body)
}

func (b *HTTPSBank) answerErr(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	b.answerJSON(w, r, status, bankhttps.APIError{Code: code, Message: msg})
}

// safeName: a plain file name the bank accepts.
func safeFileName(n string) bool {
	return n != "" && len(n) <= 200 && !strings.HasPrefix(n, ".") && !strings.ContainsAny(n, "/\\\x00") && path.Base(n) == n
}

func (b *HTTPSBank) saveIndexLocked() error {
	raw, err := json.Marshal(b.index)
	if err != nil {
		return err
	}
	return b.writeFileSync(httpsIndexFile, raw)
}

func (b *HTTPSBank) status(no string, e indexEntry) bankhttps.DeliveryStatus {
	return bankhttps.DeliveryStatus{Ref: no + "/" + e.Name, BankBatchNo: no, Name: e.Name, Size: e.Size, SM3: e.SM3, ReceivedAt: e.ReceivedAt}
}

func (b *HTTPSBank) postBatch(w http.ResponseWriter, r *http.Request) {
	no, name := r.PathValue("no"), r.URL.Query().Get("name")
	if !safeFileName(no) || !safeFileName(name) {
		b.answerErr(w, r, 400, "bad_name", "bank batch number and name must be plain file names")
		return
	}
	if k := r.Header.Get(bankhttps.HeaderIdempotencyKey); k != no {
		b.answerErr(w, r, 400, "idempotency_key", "Idempotency-Key must equal the bank batch number of the path")
		return
	}
	body, _ := io.ReadAll(r.Body)
	sum := sm3.Sum(body)
	digest := hex.EncodeToString(sum[:])
	log := b.log.With("bank_batch_no", no, "file", name)

	b.hmu.Lock()
	if b.hf.Unavailable > 0 {
		b.hf.Unavailable--
		b.hst.Unavailable++
		b.hmu.Unlock()
		log.Warn("fault: answered 503 without storing")
		b.answerErr(w, r, 503, "unavailable", "银行系统繁忙 (bank busy, try later)")
		return
	}
	if e, ok := b.index[no]; ok {
		if e.SM3 == digest && e.Size == int64(len(body)) {
			b.hst.Repeats++
			b.hmu.Unlock()
			log.Info("repeat of an accepted batch: answered from the idempotency index")
			b.answerJSON(w, r, 200, b.status(no, e))
			return
		}
		b.hst.Conflicts++
		b.hmu.Unlock()
		log.Warn("same idempotency key, other content: refused")
		b.answerErr(w, r, 409, "idempotency_conflict", "same idempotency key, other content")
		return
	}
	dst := path.Join(b.delDir, name)
	if _, err := b.root.Lstat(dst); err == nil {
		b.hst.Conflicts++
		b.hmu.Unlock()
		b.answerErr(w, r, 409, "name_taken", "a file of another batch number holds this name")
		return
	}
	if err := b.writeFileSync(dst, body); err != nil {
		b.hmu.Unlock()
		log.Error("batch not stored", "err", err)
		b.answerErr(w, r, 500, "store", "not stored")
		return
	}
	e := indexEntry{Name: name, Size: int64(len(body)), SM3: digest, ReceivedAt: time.Now().UTC()}
	b.index[no] = e
	if err := b.saveIndexLocked(); err != nil {
		delete(b.index, no)
		_ = b.root.Remove(dst)
		b.hmu.Unlock()
		log.Error("idempotency index not saved", "err", err)
		b.answerErr(w, r, 500, "store", "not stored")
		return
	}
	hang := b.hf.HangAfterAccept > 0
	hangFor := b.hf.HangFor
	if hang {
		b.hf.HangAfterAccept--
		b.hst.Hung++
	}
	b.hmu.Unlock()
	log.Info("batch received", "size", len(body))
	b.arrived(dst)
	if hang {
		if hangFor <= 0 {
			hangFor = 2 * time.Minute
		}
		log.Warn("fault: accepted, now hanging without an answer", "for", hangFor)
		t := time.NewTimer(hangFor)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		case <-b.hangs:
		}
		panic(http.ErrAbortHandler) // drop the connection: no answer at all
	}
	b.answerJSON(w, r, 201, b.status(no, e))
}

func (b *HTTPSBank) getBatch(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("no")
	b.hmu.Lock()
	e, ok := b.index[no]
	b.hmu.Unlock()
	if !ok {
		b.answerErr(w, r, 404, "not_found", "no batch under this number")
		return
	}
	// What the bank holds now (a test may have changed it), else the index.
	if raw, err := b.readAll(path.Join(b.delDir, e.Name), crypto.DefaultMaxBytes+(1<<20)); err == nil {
		sum := sm3.Sum(raw)
		e.Size, e.SM3 = int64(len(raw)), hex.EncodeToString(sum[:])
	}
	b.answerJSON(w, r, 200, b.status(no, e))
}

func (b *HTTPSBank) listFeedback(w http.ResponseWriter, r *http.Request) {
	var l bankhttps.FeedbackList
	d, err := b.root.Open(b.fbDir)
	if err == nil {
		ents, _ := d.ReadDir(-1)
		_ = d.Close()
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			l.Items = append(l.Items, bankhttps.FeedbackItem{ID: e.Name(), Size: fi.Size(), ReadyAt: fi.ModTime().UTC()})
		}
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].ID < l.Items[j].ID })
	b.answerJSON(w, r, 200, l)
}

func (b *HTTPSBank) getFeedback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !safeFileName(id) {
		b.answerErr(w, r, 404, "not_found", "no such return file")
		return
	}
	raw, err := b.readAll(path.Join(b.fbDir, id), 512<<20)
	if err != nil {
		b.answerErr(w, r, 404, "not_found", "no such return file")
		return
	}
	b.answer(w, r, 200, "application/octet-stream", raw)
}

func (b *HTTPSBank) ackFeedback(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !safeFileName(id) {
		b.answerErr(w, r, 404, "not_found", "no such return file")
		return
	}
	switch err := b.archive(id); {
	case err == nil:
		b.answerJSON(w, r, 200, map[string]string{"status": "archived"})
	case errors.Is(err, os.ErrNotExist):
		b.answerErr(w, r, 404, "not_found", "no such return file")
	default:
		b.answerErr(w, r, 500, "archive", err.Error())
	}
}

// archive moves a return file to the archive directory; one already there
// is fine; one in neither place is os.ErrNotExist.
func (b *HTTPSBank) archive(id string) error {
	b.hmu.Lock()
	defer b.hmu.Unlock()
	src, dst := path.Join(b.fbDir, id), path.Join(b.archDir, id)
	if _, err := b.root.Lstat(src); errors.Is(err, os.ErrNotExist) {
		if _, err := b.root.Lstat(dst); err == nil {
			return nil
		}
		return os.ErrNotExist
	}
	return b.root.Rename(src, dst)
}

// pusher POSTs every return file in the feedback directory to the
// gateway's callback, one at a time, until it answers 200 with a valid
// signature; then the file is archived. Failed files are retried with a
// growing pause (up to 5 s).
func (b *HTTPSBank) pusher() {
	defer b.wg.Done()
	next := map[string]time.Time{}
	wait := map[string]time.Duration{}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		target := b.hcfg.Callback()
		if target == "" {
			continue
		}
		d, err := b.root.Open(b.fbDir)
		if err != nil {
			continue
		}
		ents, _ := d.ReadDir(-1)
		_ = d.Close()
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, id := range names {
			if b.ctx.Err() != nil {
				return
			}
			if time.Now().Before(next[id]) {
				continue
			}
			if err := b.push(target, id); err != nil {
				w := min(max(2*wait[id], 200*time.Millisecond), 5*time.Second)
				wait[id], next[id] = w, time.Now().Add(w)
				b.log.Warn("push not acknowledged; will retry", "return_file", id, "retry_in", w, "err", err)
				continue
			}
			delete(wait, id)
			delete(next, id)
		}
	}
}

// push sends one return file to the callback and archives it on success.
func (b *HTTPSBank) push(target, id string) error {
	raw, err := b.readAll(path.Join(b.fbDir, id), 512<<20)
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("name", id)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if err := bankhttps.SignRequest(req, b.cfg.Bank.Key, b.uid(), time.Now(), sm3.Sum(raw)); err != nil {
		return err
	}
	b.hmu.Lock()
	b.hst.PushAttempts++
	b.hmu.Unlock()
	res, err := b.client.Do(req)
	if err != nil {
		b.pushRejected(0)
		return err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if err != nil {
		b.pushRejected(0)
		return err
	}
	if res.StatusCode != http.StatusOK {
		b.pushRejected(res.StatusCode)
		return fmt.Errorf("callback answered %d: %s", res.StatusCode, bytes.TrimSpace(body))
	}
	if err := bankhttps.VerifyResponse(res, req.URL.RequestURI(), req.Header.Get(bankhttps.HeaderNonce), body, b.cfg.Gateway, b.uid(), time.Now(), b.hcfg.MaxClockSkew); err != nil {
		b.pushRejected(res.StatusCode)
		return fmt.Errorf("callback's 200 not trusted: %w", err)
	}
	if err := b.archive(id); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	b.hmu.Lock()
	b.hst.Pushed++
	b.hmu.Unlock()
	b.log.Info("return file pushed and acknowledged", "return_file", id)
	return nil
}

func (b *HTTPSBank) pushRejected(status int) {
	b.hmu.Lock()
	b.hst.PushRejections[status]++
	b.hmu.Unlock()
}
