// Command flux-cel evaluates Flux healthCheckExprs on Kubernetes objects with Flux's own code, for the tests.
//
// It owns nothing but the glue: reading a request, and for each object the status that Flux's custom
// status reader (github.com/fluxcd/pkg/runtime/cel, as kustomize-controller builds it from a Kustomization's
// spec.healthCheckExprs) reports, beside the one kstatus computes without any expression (what Flux uses for
// a kind without healthCheckExprs). It decides nothing itself.
//
// stdin:  {"healthChecks": [{"apiVersion", "kind", "current", "inProgress", "failed"}], "objects": [{...}]}
// stdout: [{"status", "message", "error", "kstatus"}], one per object, in order. "status" is Current,
// InProgress, Failed or Unknown (an expression could not be evaluated: "error" says why), as Flux's wait sees it.
// A request Flux would refuse (an unknown field, an expression that does not parse) exits 2 with the reason.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "sigs.k8s.io/json"
)

type request struct {
	HealthChecks []kustomize.CustomHealthCheck `json:"healthChecks"`
	Objects      []json.RawMessage             `json:"objects"`
}

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error"`
	Kstatus string `json:"kstatus"`
}

func main() {
	verdicts, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "flux-cel: %v\n", err)
		os.Exit(2)
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdicts); err != nil {
		fmt.Fprintf(os.Stderr, "flux-cel: %v\n", err)
		os.Exit(2)
	}
}

func run() ([]verdict, error) {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, err
	}
	// Field names match case-sensitively and an unknown or repeated one is an error, as the API server
	// would drop or refuse it (encoding/json alone would take "inprogress" for inProgress).
	var req request
	strict, err := kjson.UnmarshalStrict(input, &req)
	if err = errors.Join(append(strict, err)...); err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	newReader, err := cel.NewStatusReader(req.HealthChecks)
	if err != nil {
		return nil, err
	}
	reader := newReader(nil) // a RESTMapper is needed only to look objects up, and these come whole
	ctx := context.Background()
	verdicts := make([]verdict, 0, len(req.Objects))
	for i, raw := range req.Objects {
		// As read from the API server: client-go's unstructured JSON decoding (integers become int64).
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("objects[%d]: %w", i, err)
		}
		var v verdict
		result, err := reader.ReadStatusForObject(ctx, nil, obj)
		if err != nil { // only a cancelled context comes back this way; evaluation errors are in result.Error
			return nil, fmt.Errorf("objects[%d]: %w", i, err)
		}
		v.Status, v.Message = result.Status.String(), result.Message
		if result.Error != nil {
			v.Error = result.Error.Error()
		}
		computed, err := status.Compute(obj.DeepCopy())
		if err != nil {
			v.Kstatus = "Error: " + err.Error()
		} else {
			v.Kstatus = computed.Status.String()
		}
		verdicts = append(verdicts, v)
	}
	return verdicts, nil
}
