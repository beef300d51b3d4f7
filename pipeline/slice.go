package pipeline

import (
	"fmt"
	"strconv"
)

// SliceFromEnv derives a worker's slice from the environment of the schedulers users already
// run, when --shard-index/--shard-count were not given:
//
//   - Slurm job arrays: SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN
//     (an array 0-7 or 1-8 both give indices 0..7 of 8);
//   - Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX, with the count from COCOFLOW_SHARD_COUNT
//     (Kubernetes does not expose .spec.completions to the pod; set it in the pod template).
//
// It returns the zero Slice when none is set, and the name of the source otherwise.
func SliceFromEnv(getenv func(string) string) (Slice, string, error) {
	atoi := func(name string) (int, error) {
		v, err := strconv.Atoi(getenv(name))
		if err != nil {
			return 0, fmt.Errorf("%s=%q: want an integer", name, getenv(name))
		}
		return v, nil
	}
	switch {
	case getenv("SLURM_ARRAY_TASK_ID") != "":
		id, err := atoi("SLURM_ARRAY_TASK_ID")
		if err != nil {
			return Slice{}, "", err
		}
		count, err := atoi("SLURM_ARRAY_TASK_COUNT")
		if err != nil {
			return Slice{}, "", err
		}
		lo := 0
		if getenv("SLURM_ARRAY_TASK_MIN") != "" {
			if lo, err = atoi("SLURM_ARRAY_TASK_MIN"); err != nil {
				return Slice{}, "", err
			}
		}
		s := Slice{Index: id - lo, Count: count}
		return s, "slurm", s.Validate()
	case getenv("JOB_COMPLETION_INDEX") != "":
		id, err := atoi("JOB_COMPLETION_INDEX")
		if err != nil {
			return Slice{}, "", err
		}
		if getenv("COCOFLOW_SHARD_COUNT") == "" {
			return Slice{}, "", fmt.Errorf("JOB_COMPLETION_INDEX is set but COCOFLOW_SHARD_COUNT is not: set it to the Job's completions")
		}
		count, err := atoi("COCOFLOW_SHARD_COUNT")
		if err != nil {
			return Slice{}, "", err
		}
		s := Slice{Index: id, Count: count}
		return s, "kubernetes", s.Validate()
	}
	return Slice{}, "", nil
}

// Validate checks 0 <= Index < Count.
func (s Slice) Validate() error {
	if s.Count < 0 || (s.Count > 0 && (s.Index < 0 || s.Index >= s.Count)) {
		return fmt.Errorf("shard index %d is outside 0..%d", s.Index, s.Count-1)
	}
	return nil
}
