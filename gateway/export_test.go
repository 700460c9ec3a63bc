package gateway

import "yktgw/banks"

// WrapChannelForTest replaces a bank's channel by a wrapper (fault injection).
func WrapChannelForTest(g *Gateway, code string, wrap func(banks.Channel) banks.Channel) {
	b := g.banks[code]
	b.Channel = wrap(b.Channel)
}
