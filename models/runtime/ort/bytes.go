package ort

import (
	"bytes"
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"
)

// externalDataDirKey is the ONNX Runtime session option that names the folder external data
// is read from when a model is loaded from memory.
const externalDataDirKey = "session.model_external_initializers_file_folder_path"

// OpenBytes loads a serialized ONNX model held in memory, such as a graph rewritten at load
// time, into a new Session. name stands for the model in errors and Path (the file it was
// read from, say). Weights stored as external data are read from dataDir, the folder of the
// file the model came from, with the paths the model records (ONNX Runtime checks that they
// stay inside it); dataDir "" is only for models without external data. ONNX Runtime copies
// what it needs from model, which the caller may drop once OpenBytes returns. Errors are those
// of Open.
func OpenBytes(name string, model []byte, dataDir string, opt Options) (*Session, error) {
	if err := opt.check(name); err != nil {
		return nil, err
	}
	info, err := parseModelInfo(bytes.NewReader(model), int64(len(model)))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	var config map[string]string
	if dataDir != "" {
		config = map[string]string{externalDataDirKey: dataDir}
	}
	return open(name, info, opt, config, func(so *ortgo.SessionOptions, in, out []string) (*ortgo.DynamicAdvancedSession, error) {
		return ortgo.NewDynamicAdvancedSessionWithONNXData(model, in, out, so)
	})
}
