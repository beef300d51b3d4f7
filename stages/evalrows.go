package stages

// Rows of the evaluate stage (paper §4.2), read by the report stage.

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
	Face    []float32 `parquet:"face,list"`    // identity embedding (ArcFace's role)
	Image   []float32 `parquet:"image,list"`   // CLIP image embedding
	Subject []float32 `parquet:"subject,list"` // CLIP image embedding of the subject region (DreamSim's role)
	ClipT   float32   `parquet:"clip_t"`       // cosine(CLIP text of the prompt, CLIP image)
	Class   string    `parquet:"class"`        // CLIP's pick among the evaluated subjects ("" when not asked)
}

// MetricRow is one aggregate measure of one method (output "metrics" of evaluate).
type MetricRow struct {
	Table      string  `parquet:"table"`  // table1 (Portraits), table2 (Scenes), table3-5 (ablations), ...
	Method     string  `parquet:"method"` // the row of the table
	Metric     string  `parquet:"metric"` // face_sim, face_div, clip_t, dreamsim
	Value      float64 `parquet:"value"`
	Lo         float64 `parquet:"lo"` // bootstrap 95% interval over identities (NaN without bootstrap)
	Hi         float64 `parquet:"hi"`
	Identities int32   `parquet:"identities"`
	Images     int32   `parquet:"images"`
}
