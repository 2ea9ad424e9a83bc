package main

import (
	"encoding/binary"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestDecodeVerdict(t *testing.T) {
	goTo := int32(-4) // NFT_GOTO
	code := binary.BigEndian.AppendUint32(nil, uint32(goTo))
	val, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_VERDICT_CODE, Data: code},
		{Type: unix.NFTA_VERDICT_CHAIN, Data: []byte("service-2QRHZV4L-default/kubernetes/tcp/https\x00")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := verdictText(decodeVerdict(val)); got != "goto service-2QRHZV4L-default/kubernetes/tcp/https" {
		t.Fatalf("got %q", got)
	}
	if v := decodeVerdict(nil); v != nil {
		t.Fatalf("no data gave %v", v)
	}
	if got := verdictText(nil); got != "" {
		t.Fatalf("nil verdict gave %q", got)
	}
}
