// WebSocket over HTTP/2 (RFC 8441) echo server on node's own http2 module
// (nghttp2), for the interop tests (interop/node_test.go). No packages.
//
//   PORT=N CERT=cert.pem KEY=key.pem node wsh2.mjs
//
// Listens with TLS (ALPN h2 only) on 127.0.0.1:PORT with
// SETTINGS_ENABLE_CONNECT_PROTOCOL=1. An extended CONNECT with
// :protocol websocket to /echo is answered 200 (selecting "echo" when the
// client offers it as a subprotocol), and every data frame the client
// sends comes back with the same opcode and FIN bit; pings get pongs, a
// close gets a close with the same payload. The WebSocket framing here is
// minimal on purpose: what is under test is node's HTTP/2.
//
// On stderr, one line per event for the test to read:
//   session N                       a new HTTP/2 connection (N counts them)
//   connect :scheme=S :path=P :authority=A version=V
import http2 from 'node:http2'
import { readFileSync } from 'node:fs'

let sessions = 0
const server = http2.createSecureServer({
  cert: readFileSync(process.env.CERT),
  key: readFileSync(process.env.KEY),
  settings: { enableConnectProtocol: true },
})

server.on('session', () => {
  sessions++
  console.error(`session ${sessions}`)
})

server.on('stream', (stream, headers) => {
  const h = (k) => headers[k] ?? '-'
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket') {
    stream.respond({ ':status': 400 })
    stream.end('extended CONNECT with :protocol websocket only\n')
    return
  }
  console.error(`connect :scheme=${h(':scheme')} :path=${h(':path')} :authority=${h(':authority')} version=${h('sec-websocket-version')}`)
  if (headers[':path'] !== '/echo' || headers['sec-websocket-version'] !== '13') {
    stream.respond({ ':status': headers[':path'] !== '/echo' ? 404 : 400 })
    stream.end()
    return
  }
  const offered = String(headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim())
  const response = { ':status': 200 }
  if (offered.includes('echo')) response['sec-websocket-protocol'] = 'echo'
  stream.respond(response)
  echo(stream)
})

// echo reads RFC 6455 frames from the client (masked) and writes them back
// unmasked.
function echo(stream) {
  let buf = Buffer.alloc(0)
  stream.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk])
    for (;;) {
      const f = parse(buf)
      if (!f) return
      buf = buf.subarray(f.size)
      if (f.opcode === 0x9) {
        stream.write(frame(true, 0xa, f.payload)) // ping → pong
      } else if (f.opcode === 0xa) {
        // unsolicited pong: ignore
      } else if (f.opcode === 0x8) {
        stream.end(frame(true, 0x8, f.payload)) // close → close
        return
      } else {
        stream.write(frame(f.fin, f.opcode, f.payload))
      }
    }
  })
  stream.on('error', () => {})
}

// parse returns the first complete frame in b, or null.
function parse(b) {
  if (b.length < 2) return null
  const fin = (b[0] & 0x80) !== 0
  const opcode = b[0] & 0x0f
  const masked = (b[1] & 0x80) !== 0
  let len = b[1] & 0x7f
  let off = 2
  if (len === 126) {
    if (b.length < 4) return null
    len = b.readUInt16BE(2)
    off = 4
  } else if (len === 127) {
    if (b.length < 10) return null
    len = Number(b.readBigUInt64BE(2))
    off = 10
  }
  const maskLen = masked ? 4 : 0
  if (b.length < off + maskLen + len) return null
  const payload = Buffer.from(b.subarray(off + maskLen, off + maskLen + len))
  if (masked) {
    const mask = b.subarray(off, off + 4)
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]
  }
  return { fin, opcode, payload, size: off + maskLen + len }
}

// frame encodes an unmasked server frame.
function frame(fin, opcode, payload) {
  let head
  if (payload.length < 126) {
    head = Buffer.from([(fin ? 0x80 : 0) | opcode, payload.length])
  } else if (payload.length < 65536) {
    head = Buffer.alloc(4)
    head[0] = (fin ? 0x80 : 0) | opcode
    head[1] = 126
    head.writeUInt16BE(payload.length, 2)
  } else {
    head = Buffer.alloc(10)
    head[0] = (fin ? 0x80 : 0) | opcode
    head[1] = 127
    head.writeBigUInt64BE(BigInt(payload.length), 2)
  }
  return Buffer.concat([head, payload])
}

server.listen(Number(process.env.PORT), '127.0.0.1')
