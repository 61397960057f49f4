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
// The script only uses the package's API: nothing on the wire is changed.
// The package speaks an earlier draft than draft-ietf-webtrans-http2-15
// (see wt2.Draft13 in internal/wt2/dialect.go); the client tells that from
// this server's SETTINGS.
//
// Optional env:
//   WT_DEBUG_LOG=1        per-session events (and library noise) to stderr

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

// Session admission goes through a request callback rather than the
// library's plain path table. With the path table, the library advertises
// SETTINGS_WT_INITIAL_MAX_DATA = 16384 but internally allows 15 MiB and only
// sends WT_MAX_DATA after ~7.5 MiB, so a peer that honours the advertised
// 16 KiB stalls. The callback path uses the advertised value as the real
// session receive window and sends WT_MAX_DATA as data is consumed.
// It also lets us answer WT-Available-Protocols: the first offered protocol
// is selected and returned in WT-Protocol (the package sends the value it
// is given as is: the bare name).
const ECHO_PATH = '/echo'
server.setRequestCallback(async ({ header }) => {
  const path = String(header[':path'] ?? '')
  dlog('session request', JSON.stringify(header))
  // Match on the path without its query string.
  if (path.split('?')[0] !== ECHO_PATH) return { status: 404, path }
  const offered = header['wt-available-protocols']
  const result = { status: 200, path: ECHO_PATH, userData: {} }
  if (Array.isArray(offered) && offered.length > 0)
    result.selectedProtocol = offered[0]
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
try {
  await server.ready
} catch (err) {
  fatal('server failed to start', err)
}
const addr = server.address()
if (!addr || !addr.port) fatal('server has no address')
stdoutWrite(`{"port": ${Number(addr.port)}}\n`)
dlog(`listening on ${addr.host}:${addr.port}`)
