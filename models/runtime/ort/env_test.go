package ort

import (
	"reflect"
	"strings"
	"testing"
)

func TestEnvProviders(t *testing.T) {
	t.Setenv(ProvidersEnv, "")
	if ps, err := EnvProviders(); ps != nil || err != nil {
		t.Errorf("unset: %v %v", ps, err)
	}
	t.Setenv(ProvidersEnv, " cuda:1, cpu ")
	ps, err := EnvProviders()
	if err != nil || !reflect.DeepEqual(ps, []Provider{{Name: CUDA, DeviceID: 1}, {Name: CPU}}) {
		t.Errorf("cuda:1,cpu: %v %v", ps, err)
	}
	t.Setenv(ProvidersEnv, "cuda:x")
	if _, err := EnvProviders(); err == nil || !strings.Contains(err.Error(), ProvidersEnv+`="cuda:x"`) {
		t.Errorf("bad value: err = %v", err)
	}
}
