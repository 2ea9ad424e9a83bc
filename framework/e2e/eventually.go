package e2e

import (
	"reflect"
	"strings"

	"github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/workload"
)

var errorType = reflect.TypeFor[error]()

// stopOnRefusal wraps a function polled by Eventually so that an error the
// API server will give again (workload.Refused: RBAC, an admission policy
// refusing exec) ends the polling at once, naming the refusal and what to
// do, instead of being retried until the window ends and reported as a
// timeout. Functions not returning an error last are polled as they are.
func stopOnRefusal(f any) any {
	v := reflect.ValueOf(f)
	t := v.Type()
	if t.Kind() != reflect.Func || t.NumOut() == 0 || t.Out(t.NumOut()-1) != errorType {
		return f
	}
	return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		var out []reflect.Value
		if t.IsVariadic() {
			out = v.CallSlice(args)
		} else {
			out = v.Call(args)
		}
		last := len(out) - 1
		if err, _ := out[last].Interface().(error); workload.Refused(err) {
			msg := "the API server refused it, and will again"
			if !strings.Contains(err.Error(), workload.RefusedAdvice) {
				msg += ": " + workload.RefusedAdvice
			}
			var stop error = gomega.StopTrying(msg).Wrap(err)
			out[last] = reflect.ValueOf(&stop).Elem()
		}
		return out
	}).Interface()
}
