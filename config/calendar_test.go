package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCalendar2026(t *testing.T) {
	cal, err := LoadCalendar("calendar/cn-2026.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 10, 0, 0, 0, chinaZone) }
	cases := []struct {
		name              string
		t                 time.Time
		business, covered bool
	}{
		{"ordinary Monday", d(2026, 3, 2), true, true},
		{"ordinary Saturday", d(2026, 3, 7), false, true},
		{"ordinary Sunday", d(2026, 3, 8), false, true},
		{"元旦 Thursday", d(2026, 1, 1), false, true},
		{"元旦 Friday", d(2026, 1, 2), false, true},
		{"调休 Sunday 2026-01-04", d(2026, 1, 4), true, true},
		{"调休 Saturday 2026-02-14", d(2026, 2, 14), true, true},
		{"春节 Monday", d(2026, 2, 16), false, true},
		{"春节 last day Monday 02-23", d(2026, 2, 23), false, true},
		{"after 春节 Tuesday", d(2026, 2, 24), true, true},
		{"调休 Saturday 2026-02-28", d(2026, 2, 28), true, true},
		{"劳动节 Monday", d(2026, 5, 4), false, true},
		{"调休 Saturday 2026-05-09", d(2026, 5, 9), true, true},
		{"调休 Sunday 2026-09-20", d(2026, 9, 20), true, true},
		{"中秋 Friday", d(2026, 9, 25), false, true},
		{"国庆 Thursday", d(2026, 10, 1), false, true},
		{"国庆 Monday", d(2026, 10, 5), false, true},
		{"国庆 Wednesday 10-07", d(2026, 10, 7), false, true},
		{"after 国庆 Thursday", d(2026, 10, 8), true, true},
		{"调休 Saturday 2026-10-10", d(2026, 10, 10), true, true},
		{"2025 not covered, weekday", d(2025, 12, 31), true, false},
		{"2027 not covered, Saturday", d(2027, 1, 2), false, false},
		{"2027 not covered, 元旦 Friday falls back to weekday", d(2027, 1, 1), true, false},
		// 2026-09-30 16:30 UTC is already 2026-10-01 in China: a holiday.
		{"UTC evening is China's next day", time.Date(2026, 9, 30, 16, 30, 0, 0, time.UTC), false, true},
		{"UTC afternoon still China's 09-30", time.Date(2026, 9, 30, 15, 59, 0, 0, time.UTC), true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, c := cal.IsBusinessDay(tc.t)
			if b != tc.business || c != tc.covered {
				t.Fatalf("IsBusinessDay(%s) = %v, %v; want %v, %v", tc.t, b, c, tc.business, tc.covered)
			}
		})
	}
	if name, ok := cal.Holiday(d(2026, 10, 3)); !ok || name != "国庆节" {
		t.Errorf("Holiday(10-03) = %q, %v", name, ok)
	}
	if ys := cal.Years(); len(ys) != 1 || ys[0] != 2026 {
		t.Errorf("Years = %v", ys)
	}
	var nilCal *Calendar
	if b, c := nilCal.IsBusinessDay(d(2026, 10, 1)); !b || c {
		t.Errorf("nil calendar: %v %v", b, c)
	}
}

func TestLoadCalendarErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, body, want string }{
		{"date outside year", "year: 2027\nwork: [2026-01-04]\n", "outside year"},
		{"bad date", "year: 2026\nwork: [2026-02-30]\n", "2026-02-30"},
		{"inverted range", "year: 2026\noff: [{from: 2026-01-03, to: 2026-01-01, name: x}]\n", "before"},
		{"work on holiday", "year: 2026\noff: [{from: 2026-01-03, to: 2026-01-03, name: x}]\nwork: [2026-01-03]\n", "also a holiday"},
		{"unknown key", "year: 2026\nholidays: []\n", "holidays"},
		{"no year", "work: []\n", "year"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadCalendar(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadCalendar("calendar/cn-2026.yaml", "calendar/cn-2026.yaml"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("same year twice: %v", err)
	}
}
