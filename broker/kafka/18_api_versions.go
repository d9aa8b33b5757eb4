package kafka

// ApiVersions (key 18), v0-3. The first request of every client.
//
// The response header never carries tagged fields, even at v3 (flexible):
// clients parse it as header v0 (see writeResponse). A request above v3 gets
// a v0-format body with UNSUPPORTED_VERSION and the full key list so the
// client can retry at a version we support (handled in dispatch, before
// decoding, since we cannot parse a future version's body).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(18, 0, 3, handleApiVersions) }

func handleApiVersions(s *Server, cc *clientConn, req kmsg.Request) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = advertised()
	return resp
}

func unsupportedApiVersions() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = advertised()
	return resp
}
