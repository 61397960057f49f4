package wt2

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

func TestSettings(t *testing.T) {
	cfg := Config{MaxData: 1000, MaxStreamData: 100, MaxIncomingStreams: 3, MaxIncomingUniStreams: 4}
	server := settingsMap(ServerSettings(&cfg))
	want := map[http2.SettingID]uint32{
		0x5:    64 << 10, // SETTINGS_MAX_FRAME_SIZE
		0x8:    1,
		0x2b60: 1,
		0x2b61: 1000,
		0x2b62: 100,
		0x2b63: 100,
		0x2b66: 100,
		0x2b64: 4,
		0x2b65: 3,
	}
	if len(server) != len(want) {
		t.Errorf("server settings %v, want %v", server, want)
	}
	for id, v := range want {
		if server[id] != v {
			t.Errorf("server setting 0x%x = %d, want %d", uint16(id), server[id], v)
		}
	}
	client := settingsMap(ClientSettings(nil))
	if client[0x5] != 64<<10 || client[0x8] != 0 || client[0x2b60] != 0 || client[0x2b61] != DefaultMaxData || client[0x2b65] != DefaultMaxIncomingStreams {
		t.Errorf("client settings %v", client)
	}
	if err := CheckSettings(server); err != nil {
		t.Errorf("CheckSettings(server) = %v", err)
	}
	for _, tt := range []struct {
		peer map[http2.SettingID]uint32
		want []string
	}{
		{client, []string{"no SETTINGS_ENABLE_CONNECT_PROTOCOL", "no SETTINGS_WT_ENABLED"}},
		{nil, []string{"no SETTINGS_ENABLE_CONNECT_PROTOCOL", "no SETTINGS_WT_ENABLED"}},
		{map[http2.SettingID]uint32{0x8: 1}, []string{"no SETTINGS_WT_ENABLED"}},
		{map[http2.SettingID]uint32{0x2b60: 1}, []string{"no SETTINGS_ENABLE_CONNECT_PROTOCOL"}},
		{map[http2.SettingID]uint32{0x8: 1, 0x2b60: 2}, []string{"SETTINGS_WT_ENABLED = 2"}},
	} {
		err := CheckSettings(tt.peer)
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("CheckSettings(%v) = %v, want ErrNotSupported", tt.peer, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("CheckSettings(%v) = %q, want it to name %q", tt.peer, err, w)
			}
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"},
		{"é", 1, ""},
		{"日本", 4, "日"},
	} {
		if got := truncateUTF8(tt.s, tt.n); got != tt.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
