// WebTransport over HTTP/2 interop echo server built on
// @fails-components/webtransport (pure-JS HTTP/2 transport, no libquiche).
//
// Usage:
//   WT_CERT=/path/cert.pem WT_KEY=/path/key.pem node server.mjs
//
// Listens with TLS (ALPN h2) on 127.0.0.1, port chosen by the kernel, and
// prints exactly one line to stdout once listening:
//   {"port": N}
// Everything else (diagnostics, library noise) goes to stderr.
// The process exits when stdin reaches EOF or on SIGTERM/SIGINT.
//
// Session path: /echo (query string ignored; any other path gets 404).
// If the CONNECT carries WT-Available-Protocols, the first offered protocol
// is selected and returned in WT-Protocol.
//   - bidirectional stream from the client: read until FIN, write the same
//     bytes back, then FIN.
//   - datagram: echoed back as a datagram.
//   - unidirectional stream from the client: read until FIN, open a new
//     server-initiated unidirectional stream, write the same bytes, FIN.
//
// stdin must stay open (e.g. a pipe held by the parent) for the server to
// keep running; started with stdin at /dev/null it exits at once.
//
// Optional env:
//   WT_DEBUG_LOG=1        per-session events (and library noise) to stderr
//   WT_WIRE=draft15       translate to draft-ietf-webtrans-http2-15 on the
//                         wire (default "library": no translation; see below)
//   WT_WHOLE_CAPSULES=1   work around the library's split-capsule bugs

import { readFileSync } from 'node:fs'

// The package tries to import the optional native HTTP/3 transport at load
// time and reports its absence with console.log (stdout). Keep stdout clean
// for the single JSON line by routing console.log/info to stderr before the
// package is loaded.
// The expected "module not found" report for that optional package is
// dropped unless WT_DEBUG_LOG=1.
const stdoutWrite = process.stdout.write.bind(process.stdout)
const stderrError = console.error.bind(console)
const quicheNoise = /^(Problem loading http3-quiche|Did you install @fails-components\/webtransport-transport-http3-quiche|http3 loader:)/
console.error = (...args) => {
  if (
    process.env.WT_DEBUG_LOG !== '1' &&
    typeof args[0] === 'string' &&
    quicheNoise.test(args[0])
  )
    return
  stderrError(...args)
}
console.log = (...args) => console.error(...args)
console.info = (...args) => console.error(...args)

const verbose = process.env.WT_DEBUG_LOG === '1'
const dlog = (...args) => {
  if (verbose) console.error('[wtnode]', ...args)
}

function fatal(msg, err) {
  console.error('[wtnode] fatal:', msg, err ?? '')
  process.exit(1)
}

const certPath = process.env.WT_CERT
const keyPath = process.env.WT_KEY
if (!certPath || !keyPath) fatal('WT_CERT and WT_KEY must name PEM files')

let cert, key
try {
  cert = readFileSync(certPath, 'utf8')
  key = readFileSync(keyPath, 'utf8')
} catch (err) {
  fatal('cannot read cert/key', err)
}

const { Http2Server } = await import('@fails-components/webtransport')

const server = new Http2Server({
  port: 0,
  host: '127.0.0.1',
  secret: 'wtnode-interop', // required by the constructor, unused for HTTP/2
  cert,
  privKey: key
})

let shuttingDown = false
function shutdown(code = 0) {
  if (shuttingDown) return
  shuttingDown = true
  try {
    server.stopServer()
  } catch {
    // ignore
  }
  // Open HTTP/2 sessions keep the event loop alive; exit explicitly.
  setTimeout(() => process.exit(code), 50).unref()
}

process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))
process.stdin.on('end', () => shutdown(0))
process.stdin.on('close', () => shutdown(0))
process.stdin.on('error', () => shutdown(0))
process.stdin.resume() // needed to observe EOF

process.on('uncaughtException', (err) => {
  // The library throws from event handlers on some protocol violations
  // (e.g. a stream ID of the wrong parity). Log and keep serving other
  // connections rather than dying silently mid-test.
  console.error('[wtnode] uncaught exception:', err)
})
process.on('unhandledRejection', (err) => {
  console.error('[wtnode] unhandled rejection:', err)
})

/** Concatenate chunks into one Uint8Array. */
function concat(chunks, total) {
  const out = new Uint8Array(total)
  let off = 0
  for (const c of chunks) {
    out.set(c, off)
    off += c.byteLength
  }
  return out
}

/** Read a ReadableStream<Uint8Array> to its end. */
async function readAll(readable) {
  const reader = readable.getReader()
  const chunks = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    if (value && value.byteLength > 0) {
      chunks.push(new Uint8Array(value))
      total += value.byteLength
    }
  }
  reader.releaseLock()
  return concat(chunks, total)
}

/** Write bytes (if any) to a WritableStream and close it (FIN). */
async function writeAllAndClose(writable, data) {
  const writer = writable.getWriter()
  if (data.byteLength > 0) await writer.write(data)
  await writer.close()
}

async function echoBidi(stream, id) {
  try {
    const data = await readAll(stream.readable)
    dlog(`bidi#${id} read ${data.byteLength} bytes, echoing`)
    await writeAllAndClose(stream.writable, data)
    dlog(`bidi#${id} done`)
  } catch (err) {
    dlog(`bidi#${id} error`, err)
  }
}

async function echoUni(session, readable, id) {
  try {
    const data = await readAll(readable)
    dlog(`uni#${id} read ${data.byteLength} bytes, replying on new uni`)
    const out = await session.createUnidirectionalStream()
    await writeAllAndClose(out, data)
    dlog(`uni#${id} done`)
  } catch (err) {
    dlog(`uni#${id} error`, err)
  }
}

async function acceptBidi(session) {
  const reader = session.incomingBidirectionalStreams.getReader()
  let n = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      echoBidi(value, n++)
    }
  } catch (err) {
    dlog('bidi accept loop ended', err)
  }
}

async function acceptUni(session) {
  const reader = session.incomingUnidirectionalStreams.getReader()
  let n = 0
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      echoUni(session, value, n++)
    }
  } catch (err) {
    dlog('uni accept loop ended', err)
  }
}

async function echoDatagrams(session) {
  try {
    const writable = session.datagrams.createWritable()
    const writer = writable.getWriter()
    const reader = session.datagrams.readable.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      dlog(`datagram ${value.byteLength} bytes`)
      await writer.write(new Uint8Array(value))
    }
  } catch (err) {
    dlog('datagram loop ended', err)
  }
}

async function serveSession(session) {
  try {
    await session.ready
  } catch (err) {
    dlog('session failed before ready', err)
    return
  }
  dlog('session ready')
  session.closed.then(
    (info) => dlog('session closed', info),
    (err) => dlog('session closed with error', err)
  )
  acceptBidi(session)
  acceptUni(session)
  echoDatagrams(session)
}

// ---------------------------------------------------------------------------
// Wire mode (env WT_WIRE). Default "library": the package's own behaviour,
// unmodified, which is what interop with this package means.
//
// WT_WIRE=draft15 makes the server speak draft-ietf-webtrans-http2-15 on the
// wire by translating the points where the library (1.6.8) differs, so that
// a -15 client can exercise the library's session, stream and flow-control
// machinery:
//   * Stream IDs: the library treats odd IDs as client-initiated and even
//     IDs as server-initiated (the reverse of section 5.2). Bit 0 of the
//     Stream ID field of every stream-bearing capsule is flipped in both
//     directions. (A draft-numbered client stream 0 otherwise makes the
//     library throw "Got bidirectional stream without asking for it".)
//   * WT_STREAM FIN: the library sends/reads 0x190b4d3b as "no FIN" and
//     0x190b4d3c as "FIN"; -15 says 0x190b4d3b carries FIN. Swapped both ways.
//   * WT_STREAMS_BLOCKED: the library reads 0x190b4d43 as uni and
//     0x190b4d44 as bidi; -15 says 0x43 bidi, 0x44 uni. Swapped on input
//     (the library never sends it).
//   * WT_RESET_STREAM: the library omits the Reliable Size field; the bytes
//     sent so far on that stream are appended on output.
//   * WT_MAX_STREAM_DATA for the server's own (send-only) unidirectional
//     streams, which the library emits, is dropped.
//   * SETTINGS: SETTINGS_WT_ENABLED (0x2b60) = 1 and
//     SETTINGS_WT_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE (0x2b66) = the
//     library's stream window are added to the server's first SETTINGS.
//   * WT-Protocol is sent as a Structured Field string ("proto") instead of
//     the bare value.
//   * Incoming bytes are re-framed into whole capsules (see WT_WHOLE_CAPSULES).
// Not translated: the library reads the peer's 0x2b63 as the send limit for
// all bidi streams and ignores 0x2b66; a zero-valued peer setting is treated
// as absent (library default used).
//
// WT_WHOLE_CAPSULES=1 (also implied by WT_WIRE=draft15)
//   The library's capsule parser loses the FIN of a FIN-carrying WT_STREAM
//   capsule with more than 64 bytes of data when the capsule arrives split
//   over several socket reads, and drops the continuation bytes of a split
//   WT_STREAM capsule for stream ID 0. With this flag incoming bytes are
//   re-framed so that the library is only ever handed whole capsules.
//   Nothing changes on the wire.
// ---------------------------------------------------------------------------
const wireMode = process.env.WT_WIRE || 'library'
if (wireMode !== 'library' && wireMode !== 'draft15')
  fatal(`WT_WIRE must be "library" or "draft15", not ${JSON.stringify(wireMode)}`)
const draft15 = wireMode === 'draft15'
const wholeCapsules = draft15 || process.env.WT_WHOLE_CAPSULES === '1'

const CAP = {
  RESET_STREAM: 0x190b4d39,
  STOP_SENDING: 0x190b4d3a,
  STREAM_3B: 0x190b4d3b,
  STREAM_3C: 0x190b4d3c,
  MAX_STREAM_DATA: 0x190b4d3e,
  STREAM_DATA_BLOCKED: 0x190b4d42,
  STREAMS_BLOCKED_43: 0x190b4d43,
  STREAMS_BLOCKED_44: 0x190b4d44
}
// Capsule types whose first field is a WebTransport Stream ID.
const STREAM_ID_CAPSULES = new Set([
  CAP.RESET_STREAM,
  CAP.STOP_SENDING,
  CAP.STREAM_3B,
  CAP.STREAM_3C,
  CAP.MAX_STREAM_DATA,
  CAP.STREAM_DATA_BLOCKED
])
// draft-15 type -> library type (the mapping is its own inverse).
const SWAP_TYPES = new Map([
  [CAP.STREAM_3B, CAP.STREAM_3C],
  [CAP.STREAM_3C, CAP.STREAM_3B],
  [CAP.STREAMS_BLOCKED_43, CAP.STREAMS_BLOCKED_44],
  [CAP.STREAMS_BLOCKED_44, CAP.STREAMS_BLOCKED_43]
])

/** QUIC varint at buf[off]: {value (Number, exact up to 2^53), len} or null. */
function readVarint(buf, off) {
  if (off >= buf.length) return null
  const len = 1 << (buf[off] >> 6)
  if (off + len > buf.length) return null
  let value = buf[off] & 0x3f
  for (let i = 1; i < len; i++) value = value * 256 + buf[off + i]
  return { value, len }
}

/** Minimal QUIC varint encoding of a Number < 2^53. */
function encodeVarint(v) {
  if (v < 0x40) return Buffer.from([v])
  if (v < 0x4000) return Buffer.from([0x40 | (v >> 8), v & 0xff])
  if (v < 0x40000000) {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(v)
    b[0] |= 0x80
    return b
  }
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(v))
  b[0] |= 0xc0
  return b
}

/** Translate one whole incoming capsule (draft-15 wire -> library). */
function translateIncoming(cap, t, l) {
  let out = cap
  if (STREAM_ID_CAPSULES.has(t.value)) {
    const idOff = t.len + l.len
    const id = readVarint(out, idOff)
    if (id) out[idOff + id.len - 1] ^= 0x01 // flip initiator bit
  }
  const swapped = SWAP_TYPES.get(t.value)
  if (swapped !== undefined)
    out = Buffer.concat([encodeVarint(swapped), out.subarray(t.len)])
  return out
}

function installCapsuleShims(nativeSession) {
  const parser = nativeSession?.capsParser
  if (!parser || typeof parser.parseData !== 'function') return
  if (wholeCapsules) {
    const origParse = parser.parseData.bind(parser)
    let pending = Buffer.alloc(0)
    parser.parseData = (data) => {
      pending = pending.length
        ? Buffer.concat([pending, data])
        : Buffer.from(data) // copy: the library keeps views of what it gets
      const ready = []
      let off = 0
      for (;;) {
        const t = readVarint(pending, off)
        if (!t) break
        const l = readVarint(pending, off + t.len)
        if (!l) break
        const end = off + t.len + l.len + l.value
        if (end > pending.length) break
        let cap = Buffer.from(pending.subarray(off, end))
        if (draft15) cap = translateIncoming(cap, t, l)
        ready.push(cap)
        off = end
      }
      pending = Buffer.from(pending.subarray(off))
      if (ready.length) origParse(Buffer.concat(ready))
    }
  }
  if (draft15) {
    const origWrite = parser.writeCapsule.bind(parser)
    parser.writeCapsule = (args) => {
      let { type, headerVints } = args
      if (STREAM_ID_CAPSULES.has(type) && headerVints?.length > 0) {
        const libId = BigInt(headerVints[0])
        // The library's own unidirectional streams are server-initiated,
        // i.e. even IDs with bit 1 set in its numbering.
        if (type === CAP.MAX_STREAM_DATA && (libId & 3n) === 2n) return false
        const rest = headerVints.slice(1)
        if (type === CAP.RESET_STREAM && rest.length === 1) {
          const sent = parser.wtstreams?.get(libId)?.flowController?.bytesSent
          rest.push(typeof sent === 'bigint' ? sent : 0n)
        }
        headerVints = [libId ^ 1n, ...rest]
      }
      if (SWAP_TYPES.has(type)) type = SWAP_TYPES.get(type)
      return origWrite({ ...args, type, headerVints })
    }
  }
}

if (wholeCapsules) {
  // Runs synchronously when the library has built a session's parser and
  // before any of that session's capsules are parsed.
  const origVisitor = server.onHttpWTSessionVisitor.bind(server)
  server.onHttpWTSessionVisitor = (args) => {
    installCapsuleShims(args.session)
    return origVisitor(args)
  }
}
dlog(`wire mode ${wireMode}, whole-capsule framing ${wholeCapsules}`)

/** RFC 8941 sf-string. */
function sfString(str) {
  return '"' + String(str).replace(/[\\"]/g, (c) => '\\' + c) + '"'
}

// Session admission goes through a request callback rather than the
// library's plain path table. With the path table, the library advertises
// SETTINGS_WT_INITIAL_MAX_DATA = 16384 but internally allows 15 MiB and only
// sends WT_MAX_DATA after ~7.5 MiB, so a peer that honours the advertised
// 16 KiB stalls. The callback path uses the advertised value as the real
// session receive window and sends WT_MAX_DATA as data is consumed.
// It also lets us answer WT-Available-Protocols: the first offered protocol
// is selected and returned in WT-Protocol (the library sends it unquoted).
const ECHO_PATH = '/echo'
server.setRequestCallback(async ({ header }) => {
  const path = String(header[':path'] ?? '')
  dlog('session request', JSON.stringify(header))
  // Match on the path without its query string.
  if (path.split('?')[0] !== ECHO_PATH) return { status: 404, path }
  const offered = header['wt-available-protocols']
  const result = { status: 200, path: ECHO_PATH, userData: {} }
  if (Array.isArray(offered) && offered.length > 0)
    result.selectedProtocol = draft15 ? sfString(offered[0]) : offered[0]
  return result
})

async function acceptSessions() {
  const reader = server.sessionStream(ECHO_PATH).getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    serveSession(value)
  }
}

acceptSessions().catch((err) => console.error('[wtnode] session loop', err))

server.startServer()
if (draft15) {
  // startServer() builds the node http2 server synchronously and listens a
  // tick later, so these settings go into the first SETTINGS frame.
  const t = server.transportInt
  t.serverInt.updateSettings({
    enableConnectProtocol: true,
    customSettings: {
      0x2b60: 1, // SETTINGS_WT_ENABLED
      0x2b61: t.initialSessionFlowControlWindow,
      0x2b62: t.initialStreamFlowControlWindow,
      0x2b63: t.initialStreamFlowControlWindow,
      0x2b64: t.initialUnidirectionalStreams,
      0x2b65: t.initialBidirectionalStreams,
      0x2b66: t.initialStreamFlowControlWindow
    }
  })
}
try {
  await server.ready
} catch (err) {
  fatal('server failed to start', err)
}
const addr = server.address()
if (!addr || !addr.port) fatal('server has no address')
stdoutWrite(`{"port": ${Number(addr.port)}}\n`)
dlog(`listening on ${addr.host}:${addr.port}`)
