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

// LatentRow is an image's latent and its subject mask at latent resolution (output "latents" of
// encode).
type LatentRow struct {
	ID        string    `parquet:"id"`              // image id
	Family    string    `parquet:"family"`          // model family whose autoencoder made the latent
	Shape     []int32   `parquet:"shape,list"`      // latent shape, e.g. [8 8 48]
	Latent    []float32 `parquet:"latent,list"`     // row-major latent values
	MaskShape []int32   `parquet:"mask_shape,list"` // [h w] of the latent-resolution mask
	Mask      []float32 `parquet:"mask,list"`       // subject fraction per latent cell, in [0, 1]
}

// TokenRow is one caption tokenized for a family's text encoder (output "tokens" of encode).
type TokenRow struct {
	ID         string  `parquet:"id"`          // image id
	K          int32   `parquet:"k"`           // caption index
	Text       string  `parquet:"text"`        // the caption
	Concept    string  `parquet:"concept"`     // concept word
	IDs        []int32 `parquet:"ids,list"`    // token ids, BOS..EOS, at most the encoder's max length, unpadded
	ConceptPos int32   `parquet:"concept_pos"` // token index of the concept word's first token; -1 if skipped
	Error      string  `parquet:"error"`       // why the caption cannot be used; "" when it can
}

// TripletRow is one CoCoIns training example (output "triplets" of triplets): an image latent
// with its subject mask and two different captions of it, P1 and P2, with the concept token
// positions i and j (paper §3.3, "Constructing Triplets").
type TripletRow struct {
	ID        string    `parquet:"id"`              // image id
	Identity  int64     `parquet:"identity"`        // for metrics only: training never reads it
	Class     string    `parquet:"class"`           // concept class of the image
	Split     string    `parquet:"split"`           // train or val, deterministic from the image id
	Shape     []int32   `parquet:"shape,list"`      // latent shape
	Latent    []float32 `parquet:"latent,list"`     // image latent x
	MaskShape []int32   `parquet:"mask_shape,list"` // [h w]
	Mask      []float32 `parquet:"mask,list"`       // subject mask m at latent resolution
	P1        string    `parquet:"p1"`              // caption P1
	P1IDs     []int32   `parquet:"p1_ids,list"`     // its token ids
	I         int32     `parquet:"i"`               // concept position in P1
	P2        string    `parquet:"p2"`              // caption P2 (≠ P1)
	P2IDs     []int32   `parquet:"p2_ids,list"`     // its token ids
	J         int32     `parquet:"j"`               // concept position in P2
}
