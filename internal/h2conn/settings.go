package h2conn

import (
	"errors"

	"golang.org/x/net/http2"
)

// onSettingsLocked applies the peer's SETTINGS, or our SETTINGS' ACK.
func (c *Conn) onSettingsLocked(f *http2.SettingsFrame) error {
	if f.IsAck() {
		if !c.ourAcked {
			// The peer applied our INITIAL_WINDOW_SIZE to every stream
			// when it sent this ACK.
			c.ourAcked = true
			c.fr.SetMaxReadFrameSize(c.ours.maxFrame) // the read loop's own framer
			delta := int64(c.ours.streamWindow) - initialWindow
			for _, s := range c.streams {
				s.in.resize(delta)
				s.in.target = int64(c.ours.streamWindow)
			}
		}
		return nil
	}
	vals := make(map[http2.SettingID]uint32)
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			code := http2.ErrCodeProtocol
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				code = http2.ErrCode(ce)
			}
			return connError(code, "bad setting %v", s)
		}
		vals[s.ID] = s.Val
		return c.applySettingLocked(s)
	})
	if err != nil {
		return err
	}
	if c.peerSettings == nil {
		c.peerSettings = make(map[http2.SettingID]uint32)
	}
	for k, v := range vals {
		c.peerSettings[k] = v
	}
	if !c.sawSettings {
		c.sawSettings = true
		c.firstSettings = vals
		close(c.settingsCh)
	}
	c.queueLocked(ctrlFrame{kind: ctrlSettingsAck})
	return nil
}

func (c *Conn) applySettingLocked(s http2.Setting) error {
	switch s.ID {
	case http2.SettingHeaderTableSize:
		if !c.tableChanged || s.Val < c.peerTableMin {
			c.peerTableMin = s.Val
		}
		c.peerTable = s.Val
		c.tableChanged = true
	case http2.SettingEnablePush:
		if c.client && s.Val != 0 {
			return connError(http2.ErrCodeProtocol, "server sent SETTINGS_ENABLE_PUSH=1")
		}
	case http2.SettingMaxConcurrentStreams:
		c.peerMaxStrms = s.Val
		c.slotSig.fire()
	case http2.SettingInitialWindowSize:
		delta := int64(s.Val) - c.peerInitWin
		c.peerInitWin = int64(s.Val)
		for _, st := range c.streams {
			st.sendAvail += delta
			if st.sendAvail > maxWindow {
				return connError(http2.ErrCodeFlowControl, "INITIAL_WINDOW_SIZE overflows stream %d's window", st.id)
			}
			st.wsig.fire()
		}
	case http2.SettingMaxFrameSize:
		c.peerMaxFrame = s.Val
	case http2.SettingMaxHeaderListSize:
		c.peerMaxHdr = uint64(s.Val)
	}
	return nil
}
