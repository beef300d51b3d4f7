package engine

import (
	"errors"
	"fmt"
	"io/fs"
)

// LoadEmbedded loads a model's built-in default: the "weights" folder of embedded (a package's
// //go:embed weights), holding configFile and CheckpointFile as the model's Save writes them.
// It returns missing when the folder has no configFile (the build carries no committed
// weights), missing wrapped with the file's name when it has configFile but no checkpoint, and
// otherwise load's result, its error prefixed with "embedded default weights".
func LoadEmbedded[M any](embedded fs.FS, configFile string, missing error, load func(fsys fs.FS, where string) (M, error)) (M, error) {
	var zero M
	fsys, err := fs.Sub(embedded, "weights")
	if err != nil {
		return zero, fmt.Errorf("embedded weights: %w", err)
	}
	files := []string{configFile, CheckpointFile}
	for i, name := range files {
		_, err := fs.Stat(fsys, name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && i == 0:
			return zero, missing
		case errors.Is(err, fs.ErrNotExist):
			return zero, fmt.Errorf("%w (weights/%s is there, weights/%s is not)", missing, files[0], name)
		case err != nil:
			return zero, fmt.Errorf("embedded weights: %s: %w", name, err)
		}
	}
	m, err := load(fsys, "weights")
	if err != nil {
		return zero, fmt.Errorf("embedded default weights: %w", err)
	}
	return m, nil
}
