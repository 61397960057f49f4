// Self-test for server.mjs using the package's own WebTransport-over-HTTP/2
// client (forceReliable: true, i.e. HTTP/2 only, no libquiche).
//
// Usage:
//   WT_CERT=/path/cert.pem WT_KEY=/path/key.pem node selftest.mjs
//
// The certificate must be valid for 127.0.0.1. It is trusted explicitly by
// adding it to node's CA store via NODE_EXTRA_CA_CERTS (read by node only at
// start-up, so this script re-executes itself with it set). TLS verification
// stays on (the package's client uses rejectUnauthorized: true when no
// serverCertificateHashes are given).
//
// Starts server.mjs as a child process, connects to https://127.0.0.1:PORT/echo
// and checks: bidirectional echo, datagram echo, and the unidirectional
// stream -> server-opened unidirectional stream reply, plus WT-Protocol
// selection. Stops the server by closing its stdin. Exit code 0 and
// "4 passed, 0 failed" on success. BIDI_SIZE overrides the bidi payload size.

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'

const here = dirname(fileURLToPath(import.meta.url))
const certPath = process.env.WT_CERT
const keyPath = process.env.WT_KEY
if (!certPath || !keyPath) {
  console.error('selftest: WT_CERT and WT_KEY must name PEM files')
  process.exit(2)
}

if (process.env.NODE_EXTRA_CA_CERTS !== certPath) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: certPath },
    stdio: 'inherit'
  })
  child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)))
} else {
  await main()
}

function withTimeout(promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

async function startServer() {
  const srv = spawn(process.execPath, [join(here, 'server.mjs')], {
    env: process.env,
    stdio: ['pipe', 'pipe', 'inherit']
  })
  const rl = createInterface({ input: srv.stdout })
  const port = await withTimeout(
    new Promise((resolve, reject) => {
      rl.once('line', (line) => {
        try {
          resolve(JSON.parse(line).port)
        } catch (err) {
          reject(new Error(`bad server line: ${line}`))
        }
      })
      srv.once('exit', (code) =>
        reject(new Error(`server exited early (${code})`))
      )
    }),
    10000,
    'server start'
  )
  return { srv, port }
}

async function readAll(readable) {
  const reader = readable.getReader()
  const chunks = []
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    chunks.push(Buffer.from(value))
  }
  return Buffer.concat(chunks)
}

async function main() {
  // Silence the package's expected "optional HTTP/3 module missing" report.
  const origLog = console.log
  console.log = (...args) => {
    if (typeof args[0] === 'string' && args[0].startsWith('http3 loader:'))
      return
    origLog(...args)
  }
  const origErr = console.error
  console.error = (...args) => {
    if (
      typeof args[0] === 'string' &&
      /^(Problem loading http3-quiche|Did you install @fails-components)/.test(
        args[0]
      )
    )
      return
    origErr(...args)
  }

  const { WebTransport } = await import('@fails-components/webtransport')
  const { srv, port } = await startServer()
  let passed = 0
  let failed = 0
  const check = (name, ok, detail = '') => {
    if (ok) passed++
    else failed++
    origLog(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`)
  }

  let transport
  try {
    transport = new WebTransport(`https://127.0.0.1:${port}/echo`, {
      forceReliable: true,
      protocols: ['wtnode-echo', 'other']
    })
    transport.closed.catch(() => {})
    await withTimeout(transport.ready, 5000, 'session ready')
    origLog(
      `session ready (reliability=${transport.reliability}, protocol=${transport.protocol})`
    )
    check(
      'protocol negotiation',
      transport.protocol === 'wtnode-echo',
      `got ${JSON.stringify(transport.protocol)}`
    )

    // 1. bidirectional echo (payload larger than the 16 KiB initial
    //    stream window so flow-control updates are exercised)
    try {
      const payload = Buffer.alloc(Number(process.env.BIDI_SIZE ?? 100 * 1024))
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff
      const bidi = await withTimeout(
        transport.createBidirectionalStream(),
        5000,
        'open bidi'
      )
      const writer = bidi.writable.getWriter()
      const readP = readAll(bidi.readable)
      await writer.write(new Uint8Array(payload))
      await writer.close()
      const echoed = await withTimeout(readP, 10000, 'bidi echo')
      check(
        'bidi echo',
        echoed.equals(payload),
        `sent ${payload.length}, got ${echoed.length}`
      )
    } catch (err) {
      check('bidi echo', false, String(err))
    }

    // 2. datagram echo
    try {
      const dgram = Buffer.from('datagram-hello')
      const dw = (
        transport.datagrams.createWritable()
      ).getWriter()
      const dr = transport.datagrams.readable.getReader()
      await dw.write(new Uint8Array(dgram))
      const { value } = await withTimeout(dr.read(), 5000, 'datagram echo')
      dr.releaseLock()
      check(
        'datagram echo',
        value && Buffer.from(value).equals(dgram),
        value ? Buffer.from(value).toString() : 'none'
      )
    } catch (err) {
      check('datagram echo', false, String(err))
    }

    // 3. unidirectional stream -> server-initiated unidirectional reply
    try {
      const msg = Buffer.from('uni-hello-from-client')
      const incoming = transport.incomingUnidirectionalStreams.getReader()
      const uni = await withTimeout(
        transport.createUnidirectionalStream(),
        5000,
        'open uni'
      )
      const uw = uni.getWriter()
      await uw.write(new Uint8Array(msg))
      await uw.close()
      const { value: rs } = await withTimeout(
        incoming.read(),
        5000,
        'incoming uni'
      )
      const got = await withTimeout(readAll(rs), 5000, 'uni read')
      check('uni echo', got.equals(msg), got.toString())
    } catch (err) {
      check('uni echo', false, String(err))
    }
  } catch (err) {
    check('session setup', false, String(err))
  } finally {
    try {
      transport?.close({ closeCode: 0, reason: 'selftest done' })
    } catch {
      // ignore
    }
    srv.stdin.end()
    await withTimeout(
      new Promise((resolve) => srv.once('exit', resolve)),
      5000,
      'server exit'
    ).catch((err) => {
      origErr(String(err))
      srv.kill('SIGTERM')
    })
  }
  origLog(`${passed} passed, ${failed} failed`)
  process.exit(failed === 0 ? 0 : 1)
}
