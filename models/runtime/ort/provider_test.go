package ort

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProvider(t *testing.T) {
	cases := []struct {
		in      string
		want    Provider
		wantErr string
	}{
		{"cpu", Provider{Name: CPU}, ""},
		{" CUDA ", Provider{Name: CUDA}, ""},
		{"cuda:0", Provider{Name: CUDA}, ""},
		{"cuda:3", Provider{Name: CUDA, DeviceID: 3}, ""},
		{"tensorrt:1", Provider{Name: TensorRT, DeviceID: 1}, ""},
		{"cpu:0", Provider{Name: CPU}, ""},
		{"cpu:1", Provider{}, "cpu takes no device index"},
		{"cuda:-1", Provider{}, "not a non-negative integer"},
		{"cuda:x", Provider{}, "not a non-negative integer"},
		{"rocm", Provider{}, "want cpu, cuda[:N] or tensorrt[:N]"},
		{"", Provider{}, "want cpu, cuda[:N] or tensorrt[:N]"},
	}
	for _, c := range cases {
		got, err := ParseProvider(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), c.in) {
				t.Errorf("ParseProvider(%q) error %v, want one naming the input and containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseProvider(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestProviderString(t *testing.T) {
	for _, s := range []string{"cpu", "cuda:0", "cuda:2", "tensorrt:1"} {
		p, err := ParseProvider(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != s {
			t.Errorf("ParseProvider(%q).String() = %q", s, p.String())
		}
	}
}

func TestValidateProviders(t *testing.T) {
	cases := []struct {
		name    string
		ps      []Provider
		wantErr string
	}{
		{"none", nil, ""},
		{"cpu", []Provider{{Name: CPU}}, ""},
		{"cuda then cpu", []Provider{{Name: CUDA}, {Name: CPU}}, ""},
		{"tensorrt cuda cpu", []Provider{{Name: TensorRT}, {Name: CUDA, DeviceID: 1}, {Name: CPU}}, ""},
		{"cpu first", []Provider{{Name: CPU}, {Name: CUDA}}, "providers[0]: cpu must be the last provider"},
		{"duplicate", []Provider{{Name: CUDA}, {Name: CUDA, DeviceID: 1}}, "providers[1]: cuda listed twice"},
		{"unknown", []Provider{{Name: "CUDA"}}, `unknown execution provider "CUDA"`},
		{"cpu device", []Provider{{Name: CPU, DeviceID: 2}}, "cpu takes no device index"},
		{"negative device", []Provider{{Name: CUDA, DeviceID: -1}}, "negative"},
	}
	for _, c := range cases {
		err := validateProviders(c.ps)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.wantErr)
		}
	}
}

func TestProviderOptions(t *testing.T) {
	got, err := providerOptions(Provider{Name: CUDA, DeviceID: 2, Options: map[string]string{"gpu_mem_limit": "1024"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"gpu_mem_limit": "1024", "device_id": "2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("providerOptions = %v, want %v", got, want)
	}
	if _, err := providerOptions(Provider{Name: CUDA, DeviceID: 1, Options: map[string]string{"device_id": "0"}}); err == nil {
		t.Error("contradicting device_id accepted")
	}
}
