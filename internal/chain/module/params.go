package module

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/store"
)

// Range is the valid range of one numeric param, both ends included.
type Range struct{ Min, Max int64 }

// Params is a module with params: it reads them and declares the valid
// range of each numeric one, by its proto field name. Genesis is checked
// against the ranges, and so will be a governance proposal to change a
// param, at submission. Relations between params (offline before jail)
// stay in the module's own checks.
type Params interface {
	Params(kv store.Reader) proto.Message
	ParamRanges() map[string]Range
}

// CheckParams checks every numeric field of p against its range. A numeric
// field without a declared range is refused too: a module that adds a
// param must say what values it may take.
func CheckParams(moduleName string, p proto.Message, ranges map[string]Range) error {
	m := p.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.IsList() || f.IsMap() {
			continue
		}
		var v int64
		switch f.Kind() {
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
			v = m.Get(f).Int()
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
			u := m.Get(f).Uint()
			v = int64(u)
			if v < 0 {
				v = 1<<63 - 1 // over 2^63: over every range's Max
			}
		default:
			continue // the module checks its other params itself
		}
		name := string(f.Name())
		r, ok := ranges[name]
		if !ok {
			return fmt.Errorf("%s: param %s has no declared valid range; this is a bug in the module: %w", moduleName, name, codes.ErrInternal)
		}
		if v < r.Min || v > r.Max {
			return fmt.Errorf("%s: param %s = %s is outside its valid range %d to %d: %w", moduleName, name, m.Get(f).String(), r.Min, r.Max, codes.ErrInvalidRequest)
		}
	}
	return nil
}
