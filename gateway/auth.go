package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/emmansun/gmsm/sm3"

	"yktgw/spool"
)

// Roles a token may carry (DESIGN.md "Security rules").
const (
	RoleSubmitter = "submitter"
	RoleViewer    = "viewer"
	RoleOperator  = "operator"
	RoleApprover  = "approver"
	RoleAdmin     = "admin"
)

// AllRoles lists the valid roles.
var AllRoles = []string{RoleSubmitter, RoleViewer, RoleOperator, RoleApprover, RoleAdmin}

// Permissions are what an API call needs; each maps to the roles granting it.
type Permission string

const (
	PermSubmit Permission = "batch.submit"
	PermRead   Permission = "batch.read"
	PermCancel Permission = "batch.cancel"
)

var grants = map[Permission][]string{
	PermSubmit: {RoleSubmitter, RoleAdmin},
	PermRead:   {RoleViewer, RoleSubmitter, RoleOperator, RoleApprover, RoleAdmin},
	PermCancel: {RoleSubmitter, RoleOperator, RoleAdmin},
}

const tokenPrefix = "ykt_"

// Principal is an authenticated caller.
type Principal struct {
	TokenID string
	Name    string
	Tenants []string // division codes as given; "*" = all
	Roles   []string
}

// LogValue never shows more than the token id.
func (p *Principal) LogValue() slog.Value {
	return slog.GroupValue(slog.String("token", p.TokenID), slog.String("name", p.Name))
}

// Can reports whether the principal's roles grant perm.
func (p *Principal) Can(perm Permission) bool {
	for _, r := range p.Roles {
		if slices.Contains(grants[perm], r) {
			return true
		}
	}
	return false
}

// Covers reports whether the principal may act for tenant: a division code
// covers its sub-divisions (210000 covers 2101xx and 210102), "*" covers all.
func (p *Principal) Covers(tenant string) bool {
	for _, t := range p.Tenants {
		if t == "*" {
			return true
		}
		if strings.HasPrefix(tenant, DivisionPrefix(t)) {
			return true
		}
	}
	return false
}

// TenantPrefixes returns the prefixes for listing queries (nil = all).
func (p *Principal) TenantPrefixes() []string {
	out := []string{}
	for _, t := range p.Tenants {
		if t == "*" {
			return nil
		}
		out = append(out, DivisionPrefix(t))
	}
	return out
}

// DivisionPrefix strips the trailing "00" pairs of an administrative division
// code: 210000 -> 21 (province), 210100 -> 2101 (city), 210102 stays.
func DivisionPrefix(code string) string {
	for len(code) > 2 && len(code)%2 == 0 && strings.HasSuffix(code, "00") {
		code = code[:len(code)-2]
	}
	return code
}

// ValidDivision reports whether s looks like a division code: 6, 9 or 12 digits.
func ValidDivision(s string) bool {
	if len(s) != 6 && len(s) != 9 && len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Errors of authentication.
var (
	ErrUnauthenticated = errors.New("gateway: missing or invalid token")
)

func hashSecret(secret string) []byte {
	h := sm3.Sum([]byte(secret))
	return h[:]
}

// CreateToken makes a token, stores only its hash and returns the secret
// string, which is shown once and never again.
func CreateToken(ctx context.Context, st spool.Store, name string, tenants, roles []string, actor string) (string, *spool.Token, error) {
	if name == "" {
		return "", nil, errors.New("gateway: token name required")
	}
	var problems []string
	if len(tenants) == 0 {
		problems = append(problems, "at least one tenant (or '*') required")
	}
	for _, t := range tenants {
		if t != "*" && !ValidDivision(t) {
			problems = append(problems, fmt.Sprintf("tenant %q is not a division code (6, 9 or 12 digits) or '*'", t))
		}
	}
	if len(roles) == 0 {
		problems = append(problems, "at least one role required")
	}
	for _, r := range roles {
		if !slices.Contains(AllRoles, r) {
			problems = append(problems, fmt.Sprintf("unknown role %q (valid: %s)", r, strings.Join(AllRoles, ", ")))
		}
	}
	if len(problems) > 0 {
		return "", nil, fmt.Errorf("gateway: token: %s", strings.Join(problems, "; "))
	}
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", nil, err
	}
	id := hex.EncodeToString(idb[:])
	secret := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sec[:]))
	t := &spool.Token{ID: id, Name: name, Hash: hashSecret(secret), Tenants: tenants, Roles: roles}
	if err := st.CreateToken(ctx, t, actor); err != nil {
		return "", nil, err
	}
	return tokenPrefix + id + "_" + secret, t, nil
}

// Authenticate checks a bearer token string against the spool.
func Authenticate(ctx context.Context, st spool.Store, bearer string) (*Principal, error) {
	rest, ok := strings.CutPrefix(bearer, tokenPrefix)
	if !ok {
		return nil, ErrUnauthenticated
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" {
		return nil, ErrUnauthenticated
	}
	t, err := st.Token(ctx, id)
	if errors.Is(err, spool.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(t.Hash, hashSecret(secret)) != 1 || !t.RevokedAt.IsZero() {
		return nil, ErrUnauthenticated
	}
	return &Principal{TokenID: t.ID, Name: t.Name, Tenants: t.Tenants, Roles: t.Roles}, nil
}
