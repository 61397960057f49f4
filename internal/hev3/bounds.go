package hev3

// Bounds on the work DNS answers can make one race do. Answers are input
// from the network: a broken or hostile server can send hundreds of
// ServiceMode records, thousands of hints or addresses. Whatever they hold,
// a race sends at most MaxQueries queries, at most Config.MaxLiveQueries
// of them at once, knows at most MaxEndpoints endpoints and makes at most
// MaxAttempts attempts. A Poll that follows no input costs O(MaxAttempts);
// one that follows an input rebuilds the endpoint list once, in
// O(MaxEndpoints).
//
// Each number is well above what real deployments publish; RELIABILITY.md
// ("DNS bounds") records the figures they were checked against.
const (
	// MaxServices is how many ServiceMode records of the origin's HTTPS
	// answer a race uses: those of lowest SvcPriority (RFC 9460 §2.4.1,
	// lower is preferred), in answer order among equals. Deployed HTTPS
	// RRsets hold one or two records (Cloudflare and Google publish one,
	// "1 . alpn=h3,h2 ..."); a multi-CDN setup adds one per CDN.
	MaxServices = 16

	// MaxTargets is how many distinct TargetNames other than the origin a
	// race resolves, AAAA and A each (RFC 9460 §3,
	// draft-ietf-happy-happyeyeballs-v3 §4.1), the records of lowest
	// SvcPriority first. A record past the bound is still used through
	// its hints. Deployed records name the origin (".") or one CDN name.
	MaxTargets = 4

	// MaxHints is how many ipv4hint and how many ipv6hint addresses of one
	// record a race uses (RFC 9460 §7.3), distinct and in record order.
	// Deployed hints repeat the A and AAAA answers: two to eight of each.
	MaxHints = 8

	// MaxAddrs is how many addresses of one A or AAAA answer a race uses,
	// distinct and in answer order. Large sites and CDNs answer with two
	// to eight (Route 53 multivalue answers return at most eight); answers
	// of hundreds or thousands of addresses are attacks or mistakes.
	MaxAddrs = 16

	// DefaultMaxLiveQueries is the default of Config.MaxLiveQueries, the
	// queries one race has in flight at once: the origin's three and the
	// addresses of two targets go at once, later ones wait for answers.
	DefaultMaxLiveQueries = 8

	// MaxQueries is the most queries one race sends: the origin's HTTPS,
	// AAAA and A, then AAAA and A for each of MaxTargets targets.
	MaxQueries = 3 + 2*MaxTargets

	// MaxAttempts is the most connection attempts one race makes. It is
	// a full race over the largest answers the bounds let in: MaxAddrs
	// addresses of each family, over QUIC and TCP. A race that has made
	// them all fails once they have ended.
	MaxAttempts = 4 * MaxAddrs

	// MaxEndpoints bounds the endpoints a race knows at once: for each
	// record, its target's addresses and its hints, over QUIC and TCP; then
	// the origin's addresses over QUIC and TCP on its port and QUIC on an
	// Alt-Svc port.
	MaxEndpoints = MaxServices*2*(2*MaxAddrs+2*MaxHints) + 3*2*MaxAddrs
)
