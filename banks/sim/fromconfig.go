package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"yktgw/banks"
	"yktgw/config"
)

// FromConfig builds a simulator Config from the `banksim` section of c
// (Load'ed, so paths are absolute) and the bank it names in c's `banks`
// list: that bank's profile, with the config's channel option overrides,
// gives the layouts, the login name (option "user" unless banksim.user is
// set) and the directories (options "outbound_dir" or "remote_dir", and
// "inbound_dir" or "feedback_dir"; default "upload" and "feedback"). Every
// key file is read here; all problems are reported at once.
func FromConfig(c *config.Config, log *slog.Logger) (Config, error) {
	bs := c.Banksim
	if bs.Bank == "" {
		return Config{}, errors.New("sim: banksim.bank is not set")
	}
	b, ok := c.Bank(bs.Bank)
	if !ok {
		return Config{}, fmt.Errorf("sim: banksim.bank %q is not a configured bank", bs.Bank)
	}
	prof, err := banks.LoadProfile(b.Profile)
	if err != nil {
		return Config{}, fmt.Errorf("sim: bank %s: %w", b.Code, err)
	}
	if prof.Code != b.Code {
		return Config{}, fmt.Errorf("sim: bank %s: profile %s has code %q", b.Code, b.Profile, prof.Code)
	}
	opts := map[string]string{}
	for k, v := range prof.Channel.Options {
		opts[k] = v
	}
	for k, v := range b.ChannelOptions {
		opts[k] = v
	}
	first := func(def string, keys ...string) string {
		for _, k := range keys {
			if v := strings.TrimSpace(opts[k]); v != "" {
				return v
			}
		}
		return def
	}
	cfg := Config{
		Listen:      bs.Listen,
		Root:        bs.Root,
		OutboundDir: first("upload", "outbound_dir", "remote_dir"),
		FeedbackDir: first("feedback", "inbound_dir", "feedback_dir"),
		User:        bs.User,
		Profile:     prof,
		FailRate:    bs.FailRate,
		Seed:        bs.Seed,
		Delay:       bs.Delay,
		Log:         log,
	}
	if cfg.User == "" {
		cfg.User = first("", "user")
	}
	var errs []error
	if cfg.User == "" {
		errs = append(errs, fmt.Errorf("sim: no login name: set banksim.user or the channel option user of bank %s", b.Code))
	}
	if cfg.HostKey, err = LoadHostKey(bs.HostKey); err != nil {
		errs = append(errs, fmt.Errorf("banksim.host_key: %w", err))
	}
	if cfg.AuthorizedKeys, err = LoadAuthorizedKeys(bs.AuthorizedKeys); err != nil {
		errs = append(errs, fmt.Errorf("banksim.authorized_keys: %w", err))
	}
	if cfg.Gateway, err = LoadCertificate(bs.GatewayCertificate); err != nil {
		errs = append(errs, fmt.Errorf("banksim.gateway_certificate: %w", err))
	}
	pass, err := config.Keys{PassphraseFile: bs.PassphraseFile}.Passphrase()
	if err != nil {
		errs = append(errs, fmt.Errorf("banksim.passphrase_file: %w", err))
	} else if cfg.Bank, err = LoadParty(bs.SigningKey, bs.Certificate, pass); err != nil {
		errs = append(errs, fmt.Errorf("banksim.signing_key/certificate: %w", err))
	}
	clear(pass)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}
