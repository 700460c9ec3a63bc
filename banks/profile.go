package banks

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"yktgw/banks/format"
)

// Profile is everything yktgw knows about one paying bank: how to reach it,
// how its files look, what its codes mean and when it may be sent to. Adding a
// bank is writing a profile, not code. Profiles are immutable after loading.
type Profile struct {
	Code, Name string
	Channel    ProfileChannel
	Outbound   *format.Layout
	Return     *format.Layout
	// Luhn is the policy for card numbers failing the Luhn check: "warn"
	// (default), "error" or "off".
	Luhn              string
	MaxRecordsPerFile int
	// SendWindows are 5-field cron expressions (minute hour day-of-month month
	// day-of-week, robfig/cron standard syntax, optional "CRON_TZ=Zone "
	// prefix), no seconds field. Each lists the minutes in which a file may be
	// sent; a time is inside the windows if its minute matches any expression.
	// No windows: any time. Evaluated in Location.
	SendWindows      []string
	BusinessDaysOnly bool // plus the holiday calendar, applied by the dispatcher
	FeedbackDeadline time.Duration
	SignerID         string // SM2 signer id, default 1234567812345678
	Envelope         ProfileEnvelope
	// FileName is the outbound file name template; placeholders {code},
	// {bank_batch_no}, {batch_id}, {tenant}, {period}, {subsidy_code}, {date}
	// (YYYYMMDD), {time} (hhmmss), {file_seq}; a number may be zero-padded
	// with {file_seq:3}. Characters other than [A-Za-z0-9._-] in values
	// become '_'.
	FileName        string
	FeedbackPattern string // path.Match glob for return file names
	Location        *time.Location

	PaidCodes       []string          // bank codes (or flags) that mean PAID
	CodeMap         map[string]Reason // exact bank code -> reason
	MessagePatterns []ReasonPattern   // bank text regexps -> reason, first match wins
	DefaultMessages bool              // then DefaultMessagePatterns (default true)

	Dir string // directory the profile was loaded from

	paid     map[string]struct{}
	windows  []cron.Schedule
	loadErrs []error
}

// ProfileChannel names the channel plugin and its options (plugin-specific
// strings; config may override them).
type ProfileChannel struct {
	Type    string
	Options map[string]string
}

// ProfileEnvelope says how files are sealed for this bank.
type ProfileEnvelope struct {
	Cipher string // "sm4-gcm" (default) | "sm4-cbc"
	CFCA   bool   // CFCA envelope variant
}

// DefaultSignerID is the SM2 signer id of GB/T 35276 when a bank sets none.
const DefaultSignerID = "1234567812345678"

type profileYAML struct {
	Code    string `yaml:"code"`
	Name    string `yaml:"name"`
	Channel struct {
		Type    string               `yaml:"type"`
		Options map[string]yaml.Node `yaml:"options"`
	} `yaml:"channel"`
	Outbound          yaml.Node `yaml:"outbound"`
	Return            yaml.Node `yaml:"return"`
	Luhn              string    `yaml:"luhn"`
	MaxRecordsPerFile int       `yaml:"max_records_per_file"`
	SendWindows       []string  `yaml:"send_windows"`
	BusinessDaysOnly  bool      `yaml:"business_days_only"`
	FeedbackDeadline  string    `yaml:"feedback_deadline"`
	Timezone          string    `yaml:"timezone"`
	SignerID          string    `yaml:"signer_id"`
	Envelope          struct {
		Cipher string `yaml:"cipher"`
		CFCA   bool   `yaml:"cfca"`
	} `yaml:"envelope"`
	FileName        string `yaml:"file_name"`
	FeedbackPattern string `yaml:"feedback_pattern"`
	Codes           struct {
		Paid     []string          `yaml:"paid"`
		Map      map[string]string `yaml:"map"`
		Messages []struct {
			Pattern string `yaml:"pattern"`
			Reason  string `yaml:"reason"`
		} `yaml:"messages"`
		DefaultMessages *bool `yaml:"default_messages"`
	} `yaml:"codes"`
}

// LoadProfile reads a profile YAML file (or a directory holding profile.yaml).
// Layouts are inline mappings or paths relative to the profile's directory.
// It returns the profile together with every problem found, loading and
// Validate's alike (errors.Join); the profile is non-nil whenever the YAML
// itself could be read, so `yktgw check` can list all problems at once.
func LoadProfile(p string) (*Profile, error) {
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		p = filepath.Join(p, "profile.yaml")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("banks: profile: %w", err)
	}
	prof, err := ParseProfile(data, filepath.Dir(p))
	if err != nil {
		return prof, fmt.Errorf("banks: profile %s: %w", p, err)
	}
	return prof, nil
}

// ParseProfile parses a profile from YAML; dir resolves layout paths.
func ParseProfile(data []byte, dir string) (*Profile, error) {
	var y profileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	p := &Profile{
		Code: y.Code, Name: y.Name,
		Channel:           ProfileChannel{Type: y.Channel.Type, Options: map[string]string{}},
		Luhn:              y.Luhn,
		MaxRecordsPerFile: y.MaxRecordsPerFile,
		SendWindows:       y.SendWindows,
		BusinessDaysOnly:  y.BusinessDaysOnly,
		SignerID:          y.SignerID,
		Envelope:          ProfileEnvelope{Cipher: y.Envelope.Cipher, CFCA: y.Envelope.CFCA},
		FileName:          y.FileName,
		FeedbackPattern:   y.FeedbackPattern,
		PaidCodes:         y.Codes.Paid,
		CodeMap:           map[string]Reason{},
		DefaultMessages:   y.Codes.DefaultMessages == nil || *y.Codes.DefaultMessages,
		Dir:               dir,
	}
	bad := func(f string, a ...any) { p.loadErrs = append(p.loadErrs, fmt.Errorf(f, a...)) }
	if p.Luhn == "" {
		p.Luhn = "warn"
	}
	if p.SignerID == "" {
		p.SignerID = DefaultSignerID
	}
	if p.Envelope.Cipher == "" {
		p.Envelope.Cipher = "sm4-gcm"
	}
	for k, n := range y.Channel.Options {
		if n.Kind != yaml.ScalarNode {
			bad("channel.options.%s: want a single value", k)
			continue
		}
		p.Channel.Options[k] = n.Value
	}
	if y.FeedbackDeadline != "" {
		d, err := time.ParseDuration(y.FeedbackDeadline)
		if err != nil {
			bad("feedback_deadline: %v", err)
		}
		p.FeedbackDeadline = d
	}
	tz := y.Timezone
	if tz == "" {
		tz = "Asia/Shanghai"
	}
	if loc, err := time.LoadLocation(tz); err == nil {
		p.Location = loc
	} else if y.Timezone == "" {
		p.Location = time.FixedZone("CST", 8*3600) // no tzdata: China has no DST
	} else {
		bad("timezone %q: %v", tz, err)
		p.Location = time.UTC
	}
	var err error
	if p.Outbound, err = loadLayoutNode(&y.Outbound, dir); err != nil {
		bad("outbound: %w", err)
	}
	if p.Return, err = loadLayoutNode(&y.Return, dir); err != nil {
		bad("return: %w", err)
	}
	for code, r := range y.Codes.Map {
		reason, err := ParseReason(r)
		if err != nil {
			bad("codes.map[%s]: %v", code, err)
			continue
		}
		p.CodeMap[code] = reason
	}
	for i, m := range y.Codes.Messages {
		reason, err := ParseReason(m.Reason)
		if err != nil {
			bad("codes.messages[%d]: %v", i, err)
		}
		re, err := regexp.Compile(m.Pattern)
		if err != nil {
			bad("codes.messages[%d]: pattern: %v", i, err)
			continue
		}
		p.MessagePatterns = append(p.MessagePatterns, ReasonPattern{Pattern: m.Pattern, Reason: reason, re: re})
	}
	p.paid = map[string]struct{}{}
	for _, c := range p.PaidCodes {
		p.paid[c] = struct{}{}
	}
	if p.Return != nil {
		if len(p.Return.PaidCodes) == 0 {
			p.Return.SetPaidCodes(p.PaidCodes)
		} else if strings.Join(p.Return.PaidCodes, ",") != strings.Join(p.PaidCodes, ",") {
			bad("return layout paid_codes %v differ from codes.paid %v", p.Return.PaidCodes, p.PaidCodes)
		}
	}
	for i, w := range p.SendWindows {
		s, err := cron.ParseStandard(w)
		if err != nil {
			bad("send_windows[%d] %q: %v", i, w, err)
			continue
		}
		p.windows = append(p.windows, s)
	}
	return p, p.Validate()
}

func loadLayoutNode(n *yaml.Node, dir string) (*format.Layout, error) {
	switch n.Kind {
	case 0:
		return nil, errors.New("missing")
	case yaml.ScalarNode:
		lp := n.Value
		if !filepath.IsAbs(lp) {
			lp = filepath.Join(dir, lp)
		}
		return format.LoadLayout(lp)
	case yaml.MappingNode:
		data, err := yaml.Marshal(n)
		if err != nil {
			return nil, err
		}
		return format.ParseLayout(data)
	}
	return nil, errors.New("want a layout mapping or a layout file path")
}

var codeRE = regexp.MustCompile(`^[A-Z0-9_]{2,16}$`)

// Validate returns every problem with the profile (errors.Join), including
// those found while loading it.
func (p *Profile) Validate() error {
	errs := append([]error(nil), p.loadErrs...)
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if !codeRE.MatchString(p.Code) {
		bad("code %q: want 2-16 of A-Z 0-9 _", p.Code)
	}
	if strings.TrimSpace(p.Name) == "" {
		bad("name: required")
	}
	switch p.Channel.Type {
	case "sftp", "https", "amqp":
	default:
		bad("channel.type %q: want sftp, https or amqp", p.Channel.Type)
	}
	if p.Outbound != nil && p.Outbound.Kind != "outbound" {
		bad("outbound: layout kind is %q", p.Outbound.Kind)
	}
	if p.Return != nil && p.Return.Kind != "return" {
		bad("return: layout kind is %q", p.Return.Kind)
	}
	switch p.Luhn {
	case "warn", "error", "off":
	default:
		bad("luhn %q: want warn, error or off", p.Luhn)
	}
	if p.MaxRecordsPerFile <= 0 || p.MaxRecordsPerFile > 10_000_000 {
		bad("max_records_per_file %d: want 1..10000000", p.MaxRecordsPerFile)
	}
	if p.FeedbackDeadline <= 0 {
		bad("feedback_deadline: required, a positive duration such as 2h")
	}
	if p.SignerID == "" || len(p.SignerID) > 64 {
		bad("signer_id: want 1..64 bytes")
	}
	switch p.Envelope.Cipher {
	case "sm4-gcm", "sm4-cbc":
	default:
		bad("envelope.cipher %q: want sm4-gcm or sm4-cbc", p.Envelope.Cipher)
	}
	if err := checkFileNameTemplate(p.FileName); err != nil {
		bad("file_name: %v", err)
	}
	if p.FeedbackPattern == "" {
		bad("feedback_pattern: required")
	} else if _, err := path.Match(p.FeedbackPattern, ""); err != nil || strings.Contains(p.FeedbackPattern, "/") {
		bad("feedback_pattern %q: not a file name glob", p.FeedbackPattern)
	}
	if len(p.PaidCodes) == 0 {
		bad("codes.paid: at least one code meaning PAID is required")
	}
	for code, r := range p.CodeMap {
		if r == ReasonPaid {
			bad("codes.map[%s]: PAID codes belong in codes.paid", code)
		}
		if _, ok := p.paid[code]; ok {
			bad("codes.map[%s]: also listed in codes.paid", code)
		}
	}
	for i, m := range p.MessagePatterns {
		if m.Reason == ReasonPaid {
			bad("codes.messages[%d]: a text pattern must not mean PAID", i)
		}
	}
	return errors.Join(errs...)
}

// IsPaid reports whether a bank code means the record was paid.
func (p *Profile) IsPaid(code string) bool {
	_, ok := p.paid[code]
	return ok
}

// Classify maps a bank's code and text to a reason: PAID for a paid code,
// else the exact code map, then the profile's text patterns, then (unless
// disabled) DefaultMessagePatterns, else OTHER. The caller keeps the raw code
// and text beside the reason.
func (p *Profile) Classify(code, message string) Reason {
	code = strings.TrimSpace(code)
	if _, ok := p.paid[code]; ok {
		return ReasonPaid
	}
	if r, ok := p.CodeMap[code]; ok {
		return r
	}
	if message == "" {
		return ReasonOther
	}
	for _, m := range p.MessagePatterns {
		if m.re.MatchString(message) {
			return m.Reason
		}
	}
	if p.DefaultMessages {
		for _, m := range defaultPatterns {
			if m.re.MatchString(message) {
				return m.Reason
			}
		}
	}
	return ReasonOther
}

// InSendWindow reports whether t falls inside one of the send windows (always
// true without windows). Business days are the dispatcher's business.
func (p *Profile) InSendWindow(t time.Time) bool {
	if len(p.windows) == 0 {
		return true
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	m := t.In(loc).Truncate(time.Minute)
	for _, s := range p.windows {
		if s.Next(m.Add(-time.Second)).Equal(m) {
			return true
		}
	}
	return false
}

// NextSendTime returns t if it is inside a window, else the start of the next
// window minute (zero time if no window ever matches).
func (p *Profile) NextSendTime(t time.Time) time.Time {
	if p.InSendWindow(t) {
		return t
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	var best time.Time
	for _, s := range p.windows {
		n := s.Next(t.In(loc))
		if !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	return best
}

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)(?::([0-9]+))?\}`)

var fileNameFields = map[string]bool{"code": true, "bank_batch_no": true, "batch_id": true, "tenant": true,
	"period": true, "subsidy_code": true, "date": true, "time": true, "file_seq": true}

func checkFileNameTemplate(t string) error {
	if t == "" {
		return errors.New("required")
	}
	if strings.ContainsAny(t, `/\`) {
		return errors.New("must be a file name, not a path")
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(t, -1) {
		if !fileNameFields[m[1]] {
			return fmt.Errorf("unknown placeholder {%s}", m[1])
		}
	}
	rest := placeholderRE.ReplaceAllString(t, "")
	if strings.ContainsAny(rest, "{}") {
		return errors.New("malformed placeholder")
	}
	if !strings.Contains(t, "{bank_batch_no") {
		return errors.New("must contain {bank_batch_no} (file names must be unique per bank)")
	}
	return nil
}

// OutboundFileName fills the file name template for one delivery.
func (p *Profile) OutboundFileName(b format.Batch) string {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	d := b.Date.In(loc)
	return placeholderRE.ReplaceAllStringFunc(p.FileName, func(ph string) string {
		m := placeholderRE.FindStringSubmatch(ph)
		var v string
		switch m[1] {
		case "code":
			v = p.Code
		case "bank_batch_no":
			v = b.BankBatchNo
		case "batch_id":
			v = b.BatchID
		case "tenant":
			v = b.Tenant
		case "period":
			v = b.Period
		case "subsidy_code":
			v = b.SubsidyCode
		case "date":
			v = d.Format("20060102")
		case "time":
			v = d.Format("150405")
		case "file_seq":
			v = strconv.Itoa(b.FileSeq)
		default:
			return ph
		}
		if m[2] != "" {
			w, _ := strconv.Atoi(m[2])
			for len(v) < w {
				v = "0" + v
			}
		}
		return safeFileChars(v)
	})
}

func safeFileChars(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if s == "." || s == ".." {
		return "_"
	}
	return string(b)
}

// LuhnValid reports whether a digit string passes the Luhn check. Profiles
// decide (Luhn) whether a failure is a warning, an error or ignored.
func LuhnValid(number string) bool {
	if len(number) < 2 {
		return false
	}
	sum, double := 0, false
	for i := len(number) - 1; i >= 0; i-- {
		c := number[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
