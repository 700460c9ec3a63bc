package config

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// chinaZone is China Standard Time. China has no daylight saving, so a fixed zone
// is exact and needs no tzdata on the host.
var chinaZone = time.FixedZone("CST", 8*60*60)

// Calendar holds China's business-day arrangement per year: public holidays and
// the weekend days that are worked instead (调休). It is data, loaded from one
// YAML file per year (config/calendar/cn-2026.yaml), never code.
type Calendar struct {
	years map[int]*calYear
}

type calYear struct {
	off  map[civilDate]string // holiday name by date
	work map[civilDate]bool   // weekend days that are working days
}

type civilDate struct {
	y int
	m time.Month
	d int
}

type calFile struct {
	Year int `yaml:"year"`
	Off  []struct {
		From string `yaml:"from"`
		To   string `yaml:"to"`
		Name string `yaml:"name"`
	} `yaml:"off"`
	Work []string `yaml:"work"`
}

// LoadCalendar reads calendar files, one year each. Two files for one year, a date
// outside its file's year, an unknown key or an inverted range are errors.
func LoadCalendar(paths ...string) (*Calendar, error) {
	c := &Calendar{years: map[int]*calYear{}}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("config: calendar: %w", err)
		}
		if err := c.add(b); err != nil {
			return nil, fmt.Errorf("config: calendar %s: %w", p, err)
		}
	}
	return c, nil
}

func (c *Calendar) add(b []byte) error {
	var f calFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return err
	}
	if f.Year < 1990 || f.Year > 2200 {
		return fmt.Errorf("year %d out of range", f.Year)
	}
	if _, dup := c.years[f.Year]; dup {
		return fmt.Errorf("year %d given twice", f.Year)
	}
	y := &calYear{off: map[civilDate]string{}, work: map[civilDate]bool{}}
	parse := func(s string) (time.Time, error) {
		t, err := time.ParseInLocation(time.DateOnly, s, chinaZone)
		if err != nil {
			return t, fmt.Errorf("date %q: %w", s, err)
		}
		if t.Year() != f.Year {
			return t, fmt.Errorf("date %s outside year %d", s, f.Year)
		}
		return t, nil
	}
	for _, o := range f.Off {
		from, err := parse(o.From)
		if err != nil {
			return err
		}
		to, err := parse(o.To)
		if err != nil {
			return err
		}
		if to.Before(from) {
			return fmt.Errorf("off %s: to %s before from %s", o.Name, o.To, o.From)
		}
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			y.off[dateOf(d)] = o.Name
		}
	}
	for _, w := range f.Work {
		d, err := parse(w)
		if err != nil {
			return err
		}
		if _, clash := y.off[dateOf(d)]; clash {
			return fmt.Errorf("work day %s is also a holiday", w)
		}
		y.work[dateOf(d)] = true
	}
	c.years[f.Year] = y
	return nil
}

func dateOf(t time.Time) civilDate {
	y, m, d := t.Date()
	return civilDate{y, m, d}
}

// IsBusinessDay reports whether t's date in China (UTC+8) is a banking business
// day. covered is false when no calendar file covers that year; business then falls
// back to plain weekdays, and callers must warn loudly.
func (c *Calendar) IsBusinessDay(t time.Time) (business bool, covered bool) {
	t = t.In(chinaZone)
	weekday := t.Weekday() != time.Saturday && t.Weekday() != time.Sunday
	var y *calYear
	if c != nil {
		y = c.years[t.Year()]
	}
	if y == nil {
		return weekday, false
	}
	d := dateOf(t)
	if _, off := y.off[d]; off {
		return false, true
	}
	if y.work[d] {
		return true, true
	}
	return weekday, true
}

// Holiday returns the name of the holiday t falls on (China time), if any.
func (c *Calendar) Holiday(t time.Time) (string, bool) {
	t = t.In(chinaZone)
	if c == nil || c.years[t.Year()] == nil {
		return "", false
	}
	name, ok := c.years[t.Year()].off[dateOf(t)]
	return name, ok
}

// Years lists the years the calendar covers, ascending.
func (c *Calendar) Years() []int {
	var ys []int
	for y := range c.years {
		ys = append(ys, y)
	}
	slices.Sort(ys)
	return ys
}
