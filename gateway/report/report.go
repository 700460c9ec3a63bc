// Package report builds the check lists the platform runs before paying
// (DOMAIN.md "Data checks"): "三无" records, duplicate persons, accounts shared
// by several ID numbers, one person with different accounts across
// departments, and the return list (退回清单) of a batch, as xlsx (excelize's
// streaming writer, memory bounded whatever the row count) or CSV (UTF-8
// with BOM).
//
// It reads the spool through the small Store interface below (spool/sqlite
// implements it), opens personal fields with a Decryptor the gateway
// supplies, and masks them (internal/pii) unless the caller asked for full
// view. It must not decide who may see what (gateway's API and CLI do), must
// not write to the spool, and must not hold a report's rows in memory: rows
// stream from the spool to the table, grouped lists hold one group at a time.
package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"

	"yktgw/banks"
	"yktgw/gateway/validate"
	"yktgw/internal/pii"
	"yktgw/spool"
)

// Scope selects the records a check list looks at. Only records of visible
// batches count (not STAGING, not CANCELLED), and not CANCELLED records.
type Scope struct {
	Tenants []string // division code prefixes (2101 covers 210102); nil = every tenant
	Subsidy string   // "" = every subsidy
	Period  string   // "" = every period
}

// Row is one record with its batch, as the check lists read it. Personal
// fields are ciphertexts; the indexes are the keyed blind indexes.
type Row struct {
	BatchID      string
	Tenant       string
	Bank         string
	Subsidy      string
	Period       string
	Seq          int
	FieldsEnc    []byte // all three fields in one ciphertext; empty: the three below (older records)
	NameEnc      []byte
	IDEnc        []byte
	AccountEnc   []byte
	IDIndex      []byte
	AccountIndex []byte
	AmountFen    int64
	State        spool.RecordState
	Reason       string
	BankCode     string
	BankMessage  string
	BadReason    string // what a bank reported about the account before (bad_accounts), "" if nothing
}

// Store is what the check lists read. Every method streams rows to fn in the
// order it names and stops at fn's first error, returning it. A Row and its
// slices are only valid during the call.
type Store interface {
	// ScopeRecords streams every record in scope, by batch (oldest first) and seq.
	ScopeRecords(ctx context.Context, s Scope, fn func(*Row) error) error
	// PersonGroups streams the records of every person (ID index) with more
	// than one record in scope, grouped by person, then batch and seq.
	PersonGroups(ctx context.Context, s Scope, fn func(*Row) error) error
	// SharedAccountGroups streams the records of every account (account
	// index) used by more than one ID number in scope, grouped by account,
	// then person, batch and seq.
	SharedAccountGroups(ctx context.Context, s Scope, fn func(*Row) error) error
	// MultiAccountGroups streams the records, among those whose subsidy is in
	// subsidies, of every person with more than one account and more than one
	// subsidy there, grouped by person, then subsidy, batch and seq.
	MultiAccountGroups(ctx context.Context, s Scope, subsidies []string, fn func(*Row) error) error
	// FailedRecords streams the FAILED records of a visible batch by seq
	// (nothing for an unknown batch).
	FailedRecords(ctx context.Context, batchID string, fn func(*Row) error) error
}

// Decryptor opens the personal fields of a row, whichever layout they are
// stored in (Row.FieldsEnc, or the three legacy ciphertexts when it is
// empty). The plaintexts may point into the decryptor's buffer: they are
// valid until its next call.
type Decryptor interface {
	OpenFields(r *Row) (name, id, account []byte, err error)
}

// Kind is a check list.
type Kind string

// The check lists.
const (
	KindSanwu           Kind = "sanwu"
	KindDuplicates      Kind = "duplicates"
	KindSharedAccounts  Kind = "shared-accounts"
	KindCrossDepartment Kind = "cross-department"
	KindReturnList      Kind = "return-list"
)

// Kinds are the per-scope check lists, in the order help texts name them.
var Kinds = []Kind{KindSanwu, KindDuplicates, KindSharedAccounts, KindCrossDepartment}

// ParseKind accepts a per-scope check list's name.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("report: unknown report %q (want %s)", s, joinKinds())
}

func joinKinds() string {
	var ss []string
	for _, k := range Kinds {
		ss = append(ss, string(k))
	}
	return strings.Join(ss, ", ")
}

// Title is the list's Chinese name (also the xlsx sheet name).
func (k Kind) Title() string {
	switch k {
	case KindSanwu:
		return "三无名单"
	case KindDuplicates:
		return "重复人员名单"
	case KindSharedAccounts:
		return "一卡多人名单"
	case KindCrossDepartment:
		return "跨部门账号比对"
	case KindReturnList:
		return "退回清单"
	}
	return string(k)
}

// Rules is the "三无" rule set (config reports.sanwu).
type Rules struct {
	MissingName       bool
	MissingIDNumber   bool
	MissingAccount    bool
	BadAccountReasons []string
}

// Options configure a Builder.
type Options struct {
	Rules Rules
	// Departments maps a subsidy code to its department (config
	// subsidies[].department); codes without one take no part in the
	// cross-department comparison.
	Departments map[string]string
}

// Builder writes check lists.
type Builder struct {
	store Store
	dec   Decryptor
	opt   Options
	bad   map[string]bool
}

// New checks the options and returns a Builder.
func New(st Store, dec Decryptor, opt Options) (*Builder, error) {
	if st == nil || dec == nil {
		return nil, errors.New("report: store and decryptor required")
	}
	b := &Builder{store: st, dec: dec, opt: opt, bad: map[string]bool{}}
	var errs []error
	for _, r := range opt.Rules.BadAccountReasons {
		if !banks.Reason(r).Valid() || r == string(banks.ReasonPaid) {
			errs = append(errs, fmt.Errorf("report: sanwu bad account reason %q is not a failure reason", r))
		}
		b.bad[r] = true
	}
	return b, errors.Join(errs...)
}

// Request says which list to write, over what, how.
type Request struct {
	Kind  Kind
	Scope Scope
	// AcrossPeriods: duplicates ignore Scope.Period (a person in several periods).
	AcrossPeriods bool
	Full          bool // personal data in clear; otherwise masked
	Format        Format
	// Progress, if set, is called with the number of rows written so far,
	// every 1000 rows and at the end.
	Progress func(rows int)
}

// Summary says what a list held.
type Summary struct {
	Rows   int // data rows written (header not counted)
	Groups int // groups (duplicates, shared accounts, cross-department)
}

// Write writes the list the request names to t (see NewTable). It closes
// nothing: the caller closes t when Write returned nil.
func (b *Builder) write(ctx context.Context, req Request, t Table) (Summary, error) {
	var sum Summary
	w := &rowWriter{b: b, t: t, full: req.Full, progress: req.Progress, sum: &sum}
	var err error
	switch req.Kind {
	case KindSanwu:
		err = b.sanwu(ctx, req.Scope, w)
	case KindDuplicates:
		s := req.Scope
		if req.AcrossPeriods {
			s.Period = ""
		}
		err = b.grouped(ctx, w, func(fn func(*Row) error) error { return b.store.PersonGroups(ctx, s, fn) },
			func(r *Row) string { return string(r.IDIndex) }, nil, dupCells)
	case KindSharedAccounts:
		err = b.grouped(ctx, w, func(fn func(*Row) error) error { return b.store.SharedAccountGroups(ctx, req.Scope, fn) },
			func(r *Row) string { return string(r.AccountIndex) }, nil, sharedCells)
	case KindCrossDepartment:
		err = b.crossDepartment(ctx, req.Scope, w)
	default:
		err = fmt.Errorf("report: unknown report %q", req.Kind)
	}
	if err == nil && w.progress != nil {
		w.progress(sum.Rows)
	}
	return sum, err
}

// Columns returns the header of a list.
func Columns(k Kind) []Column {
	switch k {
	case KindSanwu:
		return []Column{{"序号", 8}, {"问题", 36}, {"批次号", 22}, {"区划", 10}, {"补贴项目", 12}, {"期次", 10}, {"记录号", 8},
			{"姓名", 14}, {"身份证号", 22}, {"账号", 24}, {"金额（元）", 14}, {"状态", 10}}
	case KindDuplicates:
		return []Column{{"组号", 8}, {"身份证号", 22}, {"姓名", 14}, {"批次号", 22}, {"区划", 10}, {"补贴项目", 12}, {"期次", 10},
			{"记录号", 8}, {"账号", 24}, {"金额（元）", 14}, {"状态", 10}}
	case KindSharedAccounts:
		return []Column{{"组号", 8}, {"账号", 24}, {"身份证号", 22}, {"姓名", 14}, {"批次号", 22}, {"区划", 10}, {"补贴项目", 12},
			{"期次", 10}, {"记录号", 8}, {"金额（元）", 14}, {"状态", 10}}
	case KindCrossDepartment:
		return []Column{{"组号", 8}, {"身份证号", 22}, {"姓名", 14}, {"主管部门", 14}, {"补贴项目", 12}, {"账号", 24}, {"批次号", 22},
			{"区划", 10}, {"期次", 10}, {"记录号", 8}, {"金额（元）", 14}, {"状态", 10}}
	case KindReturnList:
		return []Column{{"序号", 8}, {"记录号", 8}, {"姓名", 14}, {"身份证号", 22}, {"账号", 24}, {"金额（元）", 14}, {"金额（分）", 12},
			{"退回原因", 30}, {"原因代码", 20}, {"处理方式", 26}, {"银行返回码", 12}, {"银行返回信息", 36}}
	}
	return nil
}

// Write writes the list the request names, in req.Format, to out.
func (b *Builder) Write(ctx context.Context, req Request, out io.Writer) (Summary, error) {
	if req.Kind == KindReturnList {
		return Summary{}, errors.New("report: the return list is per batch: use ReturnList")
	}
	if _, err := ParseKind(string(req.Kind)); err != nil {
		return Summary{}, err
	}
	t, err := NewTable(out, req.Format, req.Kind.Title(), Columns(req.Kind))
	if err != nil {
		return Summary{}, err
	}
	sum, err := b.write(ctx, req, t)
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	return sum, err
}

// rowWriter opens, masks and writes rows, counting them.
type rowWriter struct {
	b        *Builder
	t        Table
	full     bool
	progress func(int)
	sum      *Summary
	cells    []any
}

type person struct{ name, id, account string }

func (w *rowWriter) open(r *Row) (person, error) {
	name, id, account, err := w.b.dec.OpenFields(r)
	if err != nil {
		return person{}, fmt.Errorf("report: open %s/%d: %w", r.BatchID, r.Seq, err)
	}
	return person{string(name), string(id), string(account)}, nil
}

// shown masks a person unless full view.
func (w *rowWriter) shown(p person) person {
	if w.full {
		return p
	}
	return person{pii.MaskName(p.name), pii.MaskID(p.id), pii.MaskAccount(p.account)}
}

func (w *rowWriter) row(cells ...any) error {
	if err := w.t.Row(cells); err != nil {
		return err
	}
	w.sum.Rows++
	if w.progress != nil && w.sum.Rows%1000 == 0 {
		w.progress(w.sum.Rows)
	}
	return nil
}

// stateZH names a record state in Chinese.
func stateZH(s spool.RecordState) string {
	switch s {
	case spool.RecordPending:
		return "待发送"
	case spool.RecordSent:
		return "已发送"
	case spool.RecordPaid:
		return "已入账"
	case spool.RecordFailed:
		return "已退回"
	case spool.RecordUnknown:
		return "结果未知"
	case spool.RecordCancelled:
		return "已撤销"
	}
	return string(s)
}

// ---- 三无

func (b *Builder) sanwu(ctx context.Context, s Scope, w *rowWriter) error {
	rules := b.opt.Rules
	if !rules.MissingName && !rules.MissingIDNumber && !rules.MissingAccount && len(b.bad) == 0 {
		return nil // every rule off: an empty list
	}
	var problems []string
	return b.store.ScopeRecords(ctx, s, func(r *Row) error {
		p, err := w.open(r)
		if err != nil {
			return err
		}
		problems = problems[:0]
		if rules.MissingName && strings.TrimFunc(p.name, unicode.IsSpace) == "" {
			problems = append(problems, "缺少姓名")
		}
		if rules.MissingIDNumber && !usableID(p.id) {
			problems = append(problems, "缺少有效身份证号")
		}
		if rules.MissingAccount && !usableAccount(p.account) {
			problems = append(problems, "缺少有效账号")
		}
		if r.BadReason != "" && b.bad[r.BadReason] {
			problems = append(problems, "账户已被银行报告为"+banks.Reason(r.BadReason).LabelZH()+"（"+r.BadReason+"）")
		}
		if len(problems) == 0 {
			return nil
		}
		p = w.shown(p)
		return w.row(w.sum.Rows+1, strings.Join(problems, "；"), r.BatchID, r.Tenant, r.Subsidy, r.Period, r.Seq,
			p.name, p.id, p.account, Fen(r.AmountFen), stateZH(r.State))
	})
}

// usableID: an 18-character GB 11643 number with the right check character.
func usableID(s string) bool {
	if len(s) != 18 {
		return false
	}
	for i := 0; i < 17; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return validate.IDCheckChar(s[:17]) == s[17]
}

// usableAccount: 6 to 32 digits.
func usableAccount(s string) bool {
	if len(s) < 6 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ---- grouped lists: the store streams groups contiguously; one group at a
// time is held (opened) in memory.

type member struct {
	r Row
	p person
}

func copyRow(r *Row) Row {
	c := *r
	c.FieldsEnc, c.NameEnc, c.IDEnc, c.AccountEnc = nil, nil, nil, nil
	c.IDIndex = append([]byte(nil), r.IDIndex...)
	c.AccountIndex = append([]byte(nil), r.AccountIndex...)
	return c
}

// grouped reads a stream of contiguous groups (key), keeps those accept
// allows (nil: all) and writes each member with cells.
func (b *Builder) grouped(ctx context.Context, w *rowWriter, stream func(func(*Row) error) error, key func(*Row) string,
	accept func([]member) bool, cells func(group int, m *member) []any) error {
	var group []member
	cur := ""
	flush := func() error {
		if len(group) < 2 || (accept != nil && !accept(group)) {
			group = group[:0]
			return nil
		}
		w.sum.Groups++
		for i := range group {
			m := &group[i]
			m.p = w.shown(m.p)
			if err := w.row(cells(w.sum.Groups, m)...); err != nil {
				return err
			}
		}
		group = group[:0]
		return nil
	}
	err := stream(func(r *Row) error {
		if k := key(r); k != cur || len(group) == 0 {
			if err := flush(); err != nil {
				return err
			}
			cur = k
		}
		p, err := w.open(r)
		if err != nil {
			return err
		}
		group = append(group, member{r: copyRow(r), p: p})
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

func dupCells(g int, m *member) []any {
	r := &m.r
	return []any{g, m.p.id, m.p.name, r.BatchID, r.Tenant, r.Subsidy, r.Period, r.Seq, m.p.account, Fen(r.AmountFen), stateZH(r.State)}
}

func sharedCells(g int, m *member) []any {
	r := &m.r
	return []any{g, m.p.account, m.p.id, m.p.name, r.BatchID, r.Tenant, r.Subsidy, r.Period, r.Seq, Fen(r.AmountFen), stateZH(r.State)}
}

// ---- cross-department: the same person with different accounts under
// subsidies of different departments.

func (b *Builder) crossDepartment(ctx context.Context, s Scope, w *rowWriter) error {
	var codes []string
	for code, dept := range b.opt.Departments {
		if dept != "" {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	if len(codes) < 2 {
		return nil // fewer than two subsidies with a department: nothing to compare
	}
	only := s.Subsidy
	s.Subsidy = ""
	dept := b.opt.Departments
	accept := func(g []member) bool {
		if only != "" && !containsSubsidy(g, only) {
			return false
		}
		for i := range g {
			for j := i + 1; j < len(g); j++ {
				if dept[g[i].r.Subsidy] != dept[g[j].r.Subsidy] && string(g[i].r.AccountIndex) != string(g[j].r.AccountIndex) {
					return true
				}
			}
		}
		return false
	}
	cells := func(g int, m *member) []any {
		r := &m.r
		return []any{g, m.p.id, m.p.name, dept[r.Subsidy], r.Subsidy, m.p.account, r.BatchID, r.Tenant, r.Period, r.Seq, Fen(r.AmountFen), stateZH(r.State)}
	}
	return b.grouped(ctx, w, func(fn func(*Row) error) error { return b.store.MultiAccountGroups(ctx, s, codes, fn) },
		func(r *Row) string { return string(r.IDIndex) }, accept, cells)
}

func containsSubsidy(g []member, code string) bool {
	for i := range g {
		if g[i].r.Subsidy == code {
			return true
		}
	}
	return false
}

// ---- 退回清单

// ClassZH says in Chinese what must happen to a failed record, with the
// class code: "修正资料后重新发放（fix_data）".
func ClassZH(c banks.ReasonClass) string {
	switch c {
	case banks.ReasonClassFixData:
		return "修正资料后重新发放（fix_data）"
	case banks.ReasonClassNewAccount:
		return "需提供新账户（new_account）"
	case banks.ReasonClassRetry:
		return "可原样重新发送（retry）"
	case banks.ReasonClassNone:
		return "无需处理（none）"
	}
	return string(c)
}

// ReturnList writes the FAILED records of a batch, in seq order, with the
// normalized reason in Chinese, its class, the amount and the bank's code
// and message. The caller has checked the batch exists and may be seen.
func (b *Builder) ReturnList(ctx context.Context, batchID string, full bool, f Format, out io.Writer, progress func(int)) (Summary, error) {
	var sum Summary
	t, err := NewTable(out, f, KindReturnList.Title(), Columns(KindReturnList))
	if err != nil {
		return sum, err
	}
	w := &rowWriter{b: b, t: t, full: full, progress: progress, sum: &sum}
	err = b.store.FailedRecords(ctx, batchID, func(r *Row) error {
		p, err := w.open(r)
		if err != nil {
			return err
		}
		p = w.shown(p)
		reason := banks.Reason(r.Reason)
		if r.Reason == "" {
			reason = banks.ReasonOther
		}
		msg := r.BankMessage
		if !full {
			msg = scrubNumbers(msg)
		}
		return w.row(sum.Rows+1, r.Seq, p.name, p.id, p.account, Fen(r.AmountFen), r.AmountFen,
			reason.LabelZH(), string(reason), ClassZH(reason.Class()), r.BankCode, msg)
	})
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil && progress != nil {
		progress(sum.Rows)
	}
	return sum, err
}

// scrubNumbers masks ID and account numbers a bank echoed in free text.
func scrubNumbers(s string) string { return pii.ScrubDigits(s) }
