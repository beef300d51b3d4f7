package stages

// The row types of the datasets that stages exchange. Each is the schema of a Parquet shard,
// readable by any Parquet reader (DuckDB: SELECT * FROM 'runs/<run>/<stage>/<output>/*.parquet').
// Images are stored as encoded bytes, never as paths; tensors as flat float lists with a shape.

// ImageRow is one image of a dataset (output "images" of ingest).
type ImageRow struct {
	ID         string            `parquet:"id"`             // unique, stable: "sf-000123-04", "celeba-000001"
	Source     string            `parquet:"source"`         // synthfaces, synthpets, celeba, afhq
	Identity   int64             `parquet:"identity"`       // subject identity; -1 when unknown
	Class      string            `parquet:"class"`          // the concept word: man, woman, boy, girl, person, cat, dog
	Scene      string            `parquet:"scene"`          // synthetic scene; "" for real photos
	Split      string            `parquet:"split"`          // train, val or test (by identity for synthetic data)
	Attributes map[string]string `parquet:"attributes"`     // dataset attributes as words (CelebA: "1"/"-1")
	Width      int32             `parquet:"width"`          // pixels
	Height     int32             `parquet:"height"`         // pixels
	Format     string            `parquet:"format"`         // png or jpeg
	Image      []byte            `parquet:"image"`          // encoded image
	Mask       []byte            `parquet:"mask"`           // ground-truth subject mask (gray PNG); empty when the dataset has none
	Landmarks  []float32         `parquet:"landmarks,list"` // 5 points x,y in image pixels (CelebA); empty otherwise
}

// CaptionRow is one caption of one image (output "captions" of caption). Every image gets
// per_image rows, k = 0..per_image-1; a caption that could not be made has Error set and no Text.
type CaptionRow struct {
	ID           string `parquet:"id"`            // image id
	K            int32  `parquet:"k"`             // caption index within the image
	Text         string `parquet:"text"`          // the caption
	Concept      string `parquet:"concept"`       // concept word found in Text
	ConceptStart int32  `parquet:"concept_start"` // byte offset of the concept word in Text; -1 if none
	Backend      string `parquet:"backend"`       // template or openai:<model>
	Error        string `parquet:"error"`         // why there is no caption; "" when there is
}

// MaskRow is the subject mask of one image (output "masks" of mask).
type MaskRow struct {
	ID       string  `parquet:"id"`       // image id
	Backend  string  `parquet:"backend"`  // groundtruth, landmarks, grounded-sam2
	Width    int32   `parquet:"width"`    // pixels, same as the image
	Height   int32   `parquet:"height"`   // pixels
	Mask     []byte  `parquet:"mask"`     // gray PNG, 255 = subject
	Coverage float32 `parquet:"coverage"` // fraction of subject pixels
	Error    string  `parquet:"error"`    // why there is no mask; "" when there is
}
