// Package wt2 is the session logic of WebTransport over HTTP/2
// (draft-ietf-webtrans-http2-15): streams, datagrams, flow control, close
// and drain carried as capsules (RFC 9297) on the byte stream of an
// accepted extended CONNECT stream. A session can also speak the wire of
// an earlier draft (Dialect: Draft13, which servers announce by their
// SETTINGS, see Negotiate).
//
// The package does not speak HTTP/2 itself. The caller exchanges SETTINGS
// (see [ClientSettings], [ServerSettings] and [Negotiate]), sends or
// accepts the extended CONNECT request with :protocol "webtransport", and
// hands the CONNECT stream's request/response bodies to [NewSession] as one
// io.ReadWriteCloser, in the client or the server role.
//
// # Goroutines
//
// A session runs three goroutines: one reads capsules and never blocks on
// the application or on writing; one writes capsules, one whole capsule at
// a time, taking stream data in chunks of at most 16 KiB from stream to
// stream in turn; one tears the transport down when the session ends. All
// three return before [Session.CloseWithError] returns. When rw can hand
// over its data as it arrives, as an *h2conn.Stream can (SetDataHandler),
// capsules are parsed on the transport's own read goroutine instead, and
// stream data is copied from its frames straight into the stream's
// buffer: the reading goroutine then only waits for the end of rw's
// stream. One writer at a time holds the write token: the writing
// goroutine, or a Write without a deadline that finds the token free and
// writes batches itself until its data is taken, saving the hand-off.
// Batches are at most 64 KiB, the SETTINGS_MAX_FRAME_SIZE ClientSettings
// and ServerSettings announce, so that one crosses in one HTTP/2 DATA
// frame.
//
// # Opening streams
//
// OpenStream and OpenUniStream only reserve a stream ID: the peer learns of
// the stream from its first capsule, sent on the first Write, Close or
// CancelWrite. A stream that is opened and then left alone is never seen by
// the peer (but a later stream's first capsule implicitly opens it there,
// as stream IDs cannot be skipped).
//
// # Ending
//
// [Session.CloseWithError] sends WT_CLOSE_SESSION and then ends the send
// side of the CONNECT stream; a session ended by the peer answers by ending
// its send side too. "Ending the send side" is CloseWrite when rw has it
// (*net.TCPConn and *tls.Conn do), after which the session waits up to
// Config.CloseTimeout for the peer's end of stream before calling Close;
// without CloseWrite, rw.Close is called once the last capsule is written,
// so for an HTTP/2 stream Close must end the send side with END_STREAM.
// rw.Close must unblock a pending Read and Write, as net.Conn's does; or,
// when rw has SetWriteDeadline, a deadline in the past must end the Write,
// which the session sets first if its writer is still writing after
// CloseTimeout. An *h2conn.Stream's write stuck in a socket the peer no
// longer reads ends that way, and takes its HTTP/2 connection with it.
//
// # Waits
//
// Every blocking call ends when the session does, and otherwise on a bound
// its caller sets: Read and Write on their deadlines, OpenStreamSync,
// AcceptStream, AcceptUniStream and ReceiveDatagram on their context.
// SendDatagram, which has neither, waits only while datagrams queue behind
// the writer, like quic-go's; a writer held by a transport that stopped
// draining ends the session when the transport gives up (h2conn after its
// WriteTimeout) or when CloseWithError is called, which returns within
// CloseTimeout.
package wt2

// Draft is the version of draft-ietf-webtrans-http2 this package implements
// by default (Draft15).
const Draft = "draft-ietf-webtrans-http2-15"
