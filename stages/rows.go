package stages

// The row types of the datasets that stages exchange, in pipeline order. Each is the schema of a
// Parquet shard, readable by any Parquet reader (DuckDB: SELECT * FROM
// 'runs/<run>/<stage>/<output>/*.parquet'). Images are stored as encoded bytes, never as paths;
// tensors as flat float lists with a shape.

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
	Error     string    `parquet:"error"`           // why the image has no latent (its mask row's error), "" when it has one
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

// ---- pretrain ----

// PretrainedModelRow is one trained model (output "models" of pretrain): the files of its saved
// folder, which the model package's Load reads back, and its held-out evaluation.
type PretrainedModelRow struct {
	Name        string             `parquet:"name"`        // generator, face or clip
	Config      string             `parquet:"config"`      // the architecture as JSON (tiny.Config, tinyface.Config, tinyclip.Config)
	Files       []PretrainFileItem `parquet:"files,list"`  // the saved folder: config.json and checkpoint.bin
	Eval        string             `parquet:"eval"`        // evaluation on the held-out split as JSON ("{}" when none)
	Steps       int32              `parquet:"steps"`       // optimizer steps
	Fingerprint string             `parquet:"fingerprint"` // what made the model: params, seed, input contents
}

// PretrainFileItem is one file of a saved model folder.
type PretrainFileItem struct {
	Name   string `parquet:"name"`   // file name inside the folder
	Data   []byte `parquet:"data"`   // content
	SHA256 string `parquet:"sha256"` // hex sha256 of Data
}

// PretrainLogRow is one optimizer step of one model (output "log" of pretrain).
type PretrainLogRow struct {
	Model      string  `parquet:"model"`       // generator, face or clip
	Step       int32   `parquet:"step"`        // 0-based
	Loss       float32 `parquet:"loss"`        // the training loss of the step's batch
	Metric     float32 `parquet:"metric"`      // the extra metric named by MetricName
	MetricName string  `parquet:"metric_name"` // eps_mse (generator: unweighted ε-MSE), accuracy (face, clip: batch accuracy)
	Seconds    float32 `parquet:"seconds"`     // wall time since the (re)start of the model's training
}

// ---- train ----

// TrainLogRow is one optimizer step of the train stage (output "log").
type TrainLogRow struct {
	Step      int32   `parquet:"step"`
	Loss      float32 `parquet:"loss"`       // L (eq. 9)
	Con       float32 `parquet:"l_con"`      // L_con (eq. 7)
	Pos       float32 `parquet:"d_pos"`      // D(x̂*, x̂+): falls below d_plain as codes become consistent
	Neg       float32 `parquet:"d_neg"`      // D(x̂*, x̂−): held up by the negative term
	Plain     float32 `parquet:"d_plain"`    // D(x̂1, x̂2), the plain generator's positive distance on the same batch
	Back      float32 `parquet:"l_back"`     // L_back (eq. 8)
	LambdaNeg float32 `parquet:"lambda_neg"` // λ_neg of the step
	GradNorm  float32 `parquet:"grad_norm"`  // global gradient norm before clipping
	Seconds   float32 `parquet:"seconds"`    // wall time of the training so far (a resumed run counts on)
}

// MapperRow is a trained mapping network (output "mapper"): its config and weights, so that
// generation anywhere maps a code to the same pseudo-word.
type MapperRow struct {
	Family  string `parquet:"family"`
	Config  string `parquet:"config"`  // cocoins.MapperConfig as JSON
	Weights []byte `parquet:"weights"` // engine checkpoint of the mapper's variables
	Steps   int32  `parquet:"steps"`
}

// ---- generate ----

// GeneratedRow is one generated image (output "images" of generate).
type GeneratedRow struct {
	ID       string   `parquet:"id"`            // g-<item index>
	Prompt   string   `parquet:"prompt"`        // the prompt as written
	Codes    []int64  `parquet:"codes,list"`    // code seeds, one per instantiated concept; empty: none
	Concepts []string `parquet:"concepts,list"` // the concept words the codes were inserted before
	Seed     int64    `parquet:"seed"`          // noise seed
	Steps    int32    `parquet:"steps"`         // DDIM steps
	Guidance float32  `parquet:"guidance"`      // CFG scale
	Width    int32    `parquet:"width"`
	Height   int32    `parquet:"height"`
	Image    []byte   `parquet:"image"` // PNG
}

// ---- evaluate (paper §4.2), read by report ----

// EvalImageRow is one evaluated image (output "images" of evaluate): a generated image, or a
// real one for the dataset row.
type EvalImageRow struct {
	ID      string  `parquet:"id"`
	Table   string  `parquet:"table"`      // the table this evaluation feeds (table1, table2, table3...)
	Method  string  `parquet:"method"`     // dataset, no_code, cocoins, or an ablation's name
	Subject string  `parquet:"subject"`    // man, woman, ... ("man+woman" for multi-subject prompts)
	Group   string  `parquet:"group"`      // the identity: a subject code, or a true identity for dataset
	Sample  int32   `parquet:"sample"`     // index of the image within its group
	Prompt  string  `parquet:"prompt"`     // prompt (generated) or the set's prompt of the class (dataset)
	Codes   []int64 `parquet:"codes,list"` // code seeds, one per concept word; empty for none
	Seed    int64   `parquet:"seed"`       // noise seed; -1 for dataset images
	Image   []byte  `parquet:"image"`      // PNG
}

// EvalScoreRow holds the embeddings and per-image score of one evaluated image (output
// "scores" of evaluate).
type EvalScoreRow struct {
	ID      string    `parquet:"id"`
	Method  string    `parquet:"method"`
	Group   string    `parquet:"group"`
	Face    []float32 `parquet:"face,list"`    // identity embedding (ArcFace's role); empty: the face judge found no face
	Image   []float32 `parquet:"image,list"`   // CLIP image embedding
	Subject []float32 `parquet:"subject,list"` // the image-similarity judge's embedding (DreamSim's role); empty without the dreamsim measure
	ClipT   float32   `parquet:"clip_t"`       // cosine(CLIP text of the prompt, CLIP image)
	Class   string    `parquet:"class"`        // CLIP's pick among the evaluated subjects ("" when not asked)
}

// MetricRow is one aggregate measure of one method (output "metrics" of evaluate).
type MetricRow struct {
	Table      string  `parquet:"table"`  // table1 (Portraits), table2 (Scenes), table3-5 (ablations), ...
	Method     string  `parquet:"method"` // the row of the table
	Metric     string  `parquet:"metric"` // face_sim, face_div, clip_t, dreamsim, no_face (images without a face: Value of Images), class_acc
	Value      float64 `parquet:"value"`
	Lo         float64 `parquet:"lo"` // bootstrap 95% interval over identities (NaN without bootstrap)
	Hi         float64 `parquet:"hi"`
	Identities int32   `parquet:"identities"`
	Images     int32   `parquet:"images"`
	Judge      string  `parquet:"judge"` // the judge that computed it, for the table header ("tinyclip, raw cosine")
}
