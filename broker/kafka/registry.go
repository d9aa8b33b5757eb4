package kafka

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one decoded request. A nil response means "send
// nothing" (Produce with acks=0).
type handlerFunc func(s *Server, cc *clientConn, req kmsg.Request) kmsg.Response

type apiHandler struct {
	key      int16
	min, max int16
	fn       handlerFunc
}

// registry is filled by each NN_api.go file's init: the single source of
// both dispatch and the ApiVersions answer, so nothing is advertised that
// has no handler.
var registry = map[int16]apiHandler{}

func register(key, min, max int16, fn handlerFunc) {
	if _, dup := registry[key]; dup {
		panic("duplicate handler for api key")
	}
	registry[key] = apiHandler{key, min, max, fn}
}

// advertised lists the registry as ApiVersions entries, sorted by key.
func advertised() []kmsg.ApiVersionsResponseApiKey {
	var out []kmsg.ApiVersionsResponseApiKey
	for _, h := range registry {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = h.key, h.min, h.max
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}
