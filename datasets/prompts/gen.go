package prompts

// This file is the provenance of the embedded sets in data/: the phrase banks and the code that
// turns them into prompts. TestDataUpToDate checks that data/ matches it and rewrites data/ with
// -update.

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cocoflow/cocoflow/datasets/phrases"
)

// samplesPerSubject is the number of prompts per subject word in the 1000-prompt sets.
const samplesPerSubject = 200

// perSetting is the number of scene prompts per subject and setting (4 × 50 = 200).
const perSetting = 50

// maxSceneWords bounds the words of a paper-scale scene prompt, so that it fits CLIP's 77 tokens
// with room to spare; a prompt that would be longer is written without its trailing detail.
const maxSceneWords = 30

// generate returns the prompts of the embedded set name, built from the banks of this file.
func generate(name string) ([]Prompt, error) {
	switch name {
	case "portraits":
		return portraitSet("A %s is looking at the camera."), nil
	case "tiny-portraits":
		return portraitSet("a %s is looking at the camera."), nil
	case "scenes":
		return sceneSet()
	case "tiny-scenes":
		return tinySceneSet()
	case "multi":
		return multiPrompts, nil
	case "tiny-multi":
		return tinyMultiPrompts, nil
	}
	return nil, fmt.Errorf("prompts: no generator for set %q", name)
}

// portraitSet returns samplesPerSubject copies of the template (one %s for the subject) for
// each subject: the samples of a portrait set differ by identity code and seed, not by text.
func portraitSet(template string) []Prompt {
	out := make([]Prompt, 0, len(Subjects)*samplesPerSubject)
	for _, s := range Subjects {
		for range samplesPerSubject {
			out = append(out, Prompt{Subject: s, Setting: SettingPortrait, Text: fmt.Sprintf(template, s)})
		}
	}
	return out
}

// ---- Scenes (paper scale) ----

// situation is one scene of the Scenes set, realised for every subject. act is a verb phrase
// whose verbs are written "{simple|continuous}" ("{reads|reading} a book"), with "{p}" for the
// subject's possessive pronoun; detail is an optional trailing phrase ("sunlight across the
// pages"). kidAct and kidDetail, when kidAct is set, replace act and detail for boy and girl, so
// that children do child-appropriate things in the same setting.
type situation struct {
	act, detail, kidAct, kidDetail string
}

// daily: daily life at home, on errands and commutes.
var daily = []situation{
	{"{reads|reading} a worn paperback on a crowded morning train", "sunlight falling across the pages", "", ""},
	{"{waters|watering} potted herbs on a small apartment balcony", "the city waking up below", "", ""},
	{"{makes|making} pancakes in a cozy kitchen", "flour dusted across the counter", "", ""},
	{"{folds|folding} laundry on a sunlit bed", "a cat curled up beside the basket", "", ""},
	{"{waits|waiting} for the bus under a glass shelter", "rain streaking down the glass", "", ""},
	{"{carries|carrying} paper grocery bags up the front steps", "a baguette poking out of one bag", "", ""},
	{"{walks|walking} a golden retriever along a quiet suburban sidewalk", "autumn leaves underfoot", "", ""},
	{"{brews|brewing} coffee in a French press by the kitchen window", "steam curling in the morning light",
		"{pours|pouring} a glass of orange juice by the kitchen window", "morning light on the table"},
	{"{washes|washing} dishes at a farmhouse sink", "soap bubbles rising from the basin", "", ""},
	{"{sorts|sorting} the mail at the kitchen table", "a cup of tea going cold beside the envelopes",
		"{sorts|sorting} colorful stickers into an album at the kitchen table", "a glass of milk beside the album"},
	{"{vacuums|vacuuming} the living room rug", "afternoon sun slanting through the blinds", "", ""},
	{"{chooses|choosing} ripe tomatoes at a farmers' market stall", "baskets piled high with produce", "", ""},
	{"{rides|riding} a bicycle down a city street at rush hour", "a canvas bag in the front basket",
		"{rides|riding} a bicycle along a quiet neighborhood street", "a shiny bell on the handlebars"},
	{"{eats|eating} a sandwich on a bench outside an office block", "pigeons gathering hopefully nearby",
		"{eats|eating} a sandwich on a bench outside the school gates", "pigeons gathering hopefully nearby"},
	{"{brushes|brushing} {p} teeth in front of the bathroom mirror", "morning light on the white tiles", "", ""},
	{"{ties|tying} {p} shoelaces on the front porch", "a backpack leaning against the door", "", ""},
	{"{scrolls|scrolling} through {p} phone at a laundromat", "washing machines spinning in a row",
		"{watches|watching} the washing machines spin at a laundromat", "a comic book open on {p} lap"},
	{"{pushes|pushing} a shopping cart down a supermarket aisle", "shelves of cereal boxes on both sides", "", ""},
	{"{eats|eating} a bowl of noodles at a late-night diner counter", "neon signs reflected in the window",
		"{eats|eating} a bowl of noodles at a busy restaurant", "chopsticks held a little clumsily"},
	{"{feeds|feeding} a tabby cat on a sunny windowsill", "the cat stretching toward the bowl", "", ""},
	{"{hangs|hanging} laundry on a backyard clothesline", "white sheets flapping in the wind", "", ""},
	{"{takes|taking} a selfie in front of a bakery window", "pastries lined up behind the glass", "", ""},
	{"{curls|curling} up on a sofa with a good book", "rain drumming against the window", "", ""},
	{"{unpacks|unpacking} moving boxes in an empty apartment", "sunlight on bare wooden floors",
		"{unpacks|unpacking} a box of toys in a new bedroom", "sunlight on bare wooden floors"},
	{"{reads|reading} the newspaper at a sidewalk cafe", "a croissant on a small plate",
		"{reads|reading} a comic book at a sidewalk cafe", "a mug of hot chocolate on the table"},
	{"{waits|waiting} in line at a busy post office", "a small parcel tucked under one arm", "", ""},
	{"{assembles|assembling} a bookshelf on the living room floor", "screws scattered across the carpet",
		"{builds|building} a tower of wooden blocks on the living room floor", "toys scattered across the carpet"},
	{"{crosses|crossing} a busy intersection under an umbrella", "taxis blurred by the rain", "", ""},
	{"{sets|setting} the table for dinner", "candles flickering in the dim dining room", "", ""},
	{"{cleans|cleaning} the windows of a small apartment", "a spray bottle in one hand", "", ""},
	{"{peers|peering} into the open fridge late at night", "its light glowing on {p} face",
		"{peers|peering} into the open fridge for a snack", "its light glowing on {p} face"},
	{"{rides|riding} an escalator in a busy subway station", "tiled walls and bright signs", "", ""},
	{"{repots|repotting} a leafy houseplant on the kitchen floor", "soil spilling onto old newspaper", "", ""},
	{"{bakes|baking} banana bread in a small kitchen", "the oven light glowing warmly", "", ""},
	{"{feeds|feeding} ducks by a neighborhood pond", "a paper bag of seeds in hand", "", ""},
	{"{stands|standing} at a bus stop holding a paper coffee cup", "the first snowflakes of winter falling",
		"{stands|standing} at a bus stop with a school backpack", "the first snowflakes of winter falling"},
	{"{knits|knitting} a scarf in an armchair by the fireplace", "a ball of red yarn at {p} feet", "", ""},
	{"{sweeps|sweeping} the front steps of a brick townhouse", "fallen leaves swirling around", "", ""},
	{"{picks|picking} out a loaf of bread at a neighborhood bakery", "warm light from the display case", "", ""},
	{"{washes|washing} a car in the driveway", "soapy water running down the pavement",
		"{washes|washing} a bicycle in the driveway", "soapy water running down the pavement"},
	{"{pays|paying} for groceries at a self-checkout", "a reusable bag open on the counter",
		"{counts|counting} coins for candy at a corner shop counter", "jars of sweets lined up behind"},
	{"{listens|listening} to music with headphones on a city bus", "the streets sliding past the window", "", ""},
	{"{writes|writing} in a journal at the kitchen table", "a mug of tea and soft morning light",
		"{writes|writing} in a diary at the kitchen table", "a mug of cocoa and soft morning light"},
	{"{irons|ironing} a shirt in a small bedroom", "sunlight through sheer curtains",
		"{sorts|sorting} socks into pairs on the bedroom floor", "sunlight through sheer curtains"},
	{"{takes|taking} out the trash on a snowy evening", "the porch light glowing", "", ""},
	{"{opens|opening} the mailbox at the end of a gravel driveway", "morning dew on the grass", "", ""},
	{"{buys|buying} flowers from a street vendor", "buckets of tulips lining the sidewalk", "", ""},
	{"{sits|sitting} by a rain-streaked window with a cup of tea", "a blanket over {p} knees",
		"{sits|sitting} by a rain-streaked window with a cup of cocoa", "a blanket over {p} knees"},
	{"{fixes|fixing} a leaky faucet under the kitchen sink", "tools spread out on a towel",
		"{fixes|fixing} a loose bicycle chain on the garage floor", "tools spread out on a towel"},
	{"{browses|browsing} the shelves of a small corner bookstore", "a stack of novels in {p} arms",
		"{browses|browsing} the shelves of a small corner bookstore", "a stack of picture books in {p} arms"},
}

// professional: workplaces; children appear as pupils, visitors or helpers there.
var professional = []situation{
	{"{presents|presenting} quarterly results in a glass-walled conference room", "charts glowing on a large screen",
		"{presents|presenting} a science project in a school classroom", "a poster board covered in colorful charts"},
	{"{examines|examining} an x-ray in a hospital corridor", "the film held up to the light",
		"{looks|looking} at an x-ray of {p} own arm in a hospital room", "a bright lightbox on the wall"},
	{"{types|typing} on a laptop in an open-plan office", "sticky notes covering the monitor",
		"{types|typing} on a laptop in a school computer lab", "headphones around {p} neck"},
	{"{kneads|kneading} dough in a bakery kitchen before dawn", "flour drifting in the air",
		"{shapes|shaping} cookie dough in a small bakery kitchen", "flour drifting in the air"},
	{"{welds|welding} a steel beam in a factory workshop", "sparks flying in every direction",
		"{watches|watching} sparks fly behind a safety window at a factory open day", "wearing bright ear protection"},
	{"{pipettes|pipetting} samples in a bright research laboratory", "rows of test tubes on the bench",
		"{mixes|mixing} colored liquids in a school science lab", "wearing oversized safety goggles"},
	{"{reviews|reviewing} blueprints at a construction site", "cranes against a gray sky",
		"{wears|wearing} a hard hat on a guided tour of a construction site", "cranes against a gray sky"},
	{"{serves|serving} espresso behind a busy cafe counter", "milk steaming in a metal jug",
		"{runs|running} a lemonade stand on the sidewalk", "a handwritten price sign taped to the table"},
	{"{teaches|teaching} a chemistry lesson in front of a chalkboard", "equations written in white chalk",
		"{solves|solving} a math problem on a classroom chalkboard", "equations written in white chalk"},
	{"{repairs|repairing} a car engine in a busy garage", "grease on {p} hands",
		"{looks|looking} under the hood of a car in a small garage", "grease on {p} hands"},
	{"{takes|taking} notes during a meeting in a boardroom", "the city skyline through floor-to-ceiling windows",
		"{takes|taking} notes at a desk in a quiet school library", "stacks of books on the desk"},
	{"{arranges|arranging} flowers in a florist shop", "buckets of roses and eucalyptus all around", "", ""},
	{"{operates|operating} a camera on a film set", "studio lights and cables everywhere",
		"{acts|acting} in a commercial on a film set", "studio lights and cables everywhere"},
	{"{stocks|stocking} shelves in a small grocery store", "cans lined up neatly by color", "", ""},
	{"{cuts|cutting} hair in a vintage barbershop", "mirrors and leather chairs along the wall",
		"{gets|getting} a haircut in a vintage barbershop", "mirrors and leather chairs along the wall"},
	{"{pilots|piloting} a plane from the cockpit", "clouds stretching beyond the windshield",
		"{visits|visiting} the cockpit of a parked airliner", "instrument panels glowing all around"},
	{"{records|recording} a podcast in a soundproof studio", "foam panels covering the walls", "", ""},
	{"{sketches|sketching} a building design at a drafting table", "paper models lining the studio shelves",
		"{draws|drawing} a dream house at a drafting table in an architecture studio", "paper models lining the shelves"},
	{"{prepares|preparing} sushi at a restaurant counter", "a sharp knife and fresh fish on the board",
		"{rolls|rolling} sushi at a cooking class counter", "grains of rice stuck to {p} fingers"},
	{"{inspects|inspecting} circuit boards in an electronics lab", "a magnifying lamp over the bench",
		"{builds|building} a small robot in a school robotics lab", "wires and circuit boards on the bench"},
	{"{answers|answering} the phone at a hotel reception desk", "a brass bell on the counter",
		"{rings|ringing} the brass bell at a hotel reception desk", "suitcases stacked nearby"},
	{"{examines|examining} a puppy at a veterinary clinic", "a stethoscope around {p} neck",
		"{holds|holding} a puppy during a checkup at a veterinary clinic", "a stethoscope lying on the table"},
	{"{gives|giving} a lecture in a large lecture hall", "rows of wooden seats rising behind",
		"{gives|giving} a speech at a school assembly", "a microphone on a wooden podium"},
	{"{paints|painting} a large mural in a hotel lobby", "scaffolding and paint cans all around",
		"{paints|painting} a mural on a school hallway wall", "cans of bright paint at {p} feet"},
	{"{sorts|sorting} letters behind a post office counter", "stacks of parcels on the shelves",
		"{mails|mailing} a letter at a post office counter", "stacks of parcels on the shelves"},
	{"{tastes|tasting} a sauce in a busy restaurant kitchen", "steam rising from copper pots",
		"{stirs|stirring} a pot of soup at a cooking school counter", "steam rising from the pot"},
	{"{reads|reading} a legal brief in a wood-paneled law office", "shelves of leather-bound books",
		"{does|doing} homework at a desk in a wood-paneled office", "shelves of leather-bound books"},
	{"{loads|loading} boxes into a delivery van", "a clipboard on the dashboard",
		"{tapes|taping} up a cardboard box in a small shipping room", "rolls of packing tape on the table"},
	{"{measures|measuring} fabric in a tailor's workshop", "spools of thread covering the wall",
		"{gets|getting} measured for a suit in a tailor's workshop", "spools of thread covering the wall"},
	{"{adjusts|adjusting} a telescope in an observatory control room", "a starry sky on the monitors",
		"{looks|looking} through a telescope in an observatory", "a starry sky on the monitors"},
	{"{inspects|inspecting} a fire engine at a fire station", "helmets hanging on hooks",
		"{climbs|climbing} into a fire engine at a fire station open house", "helmets hanging on hooks"},
	{"{writes|writing} code on two monitors at a startup office", "beanbags and whiteboards behind",
		"{writes|writing} code for a simple game at a coding club", "a laptop covered in stickers"},
	{"{restocks|restocking} medicine shelves in a pharmacy", "neat rows of white boxes",
		"{picks|picking} out a box of bandages in a pharmacy aisle", "neat rows of white boxes"},
	{"{harvests|harvesting} lettuce in a commercial greenhouse", "rows of green seedlings under glass",
		"{plants|planting} seedlings in a school greenhouse", "rows of green seedlings under glass"},
	{"{tunes|tuning} a grand piano in an empty concert hall", "the lid propped open",
		"{practices|practicing} scales on a grand piano at a music school", "the lid propped open"},
	{"{reports|reporting} live in front of a news camera", "city traffic streaming behind",
		"{reads|reading} the school news in front of a camera", "a cardboard news desk and a paper microphone"},
	{"{edits|editing} a video at a desk with three monitors", "a dark editing suite lit by screens",
		"{edits|editing} a short video on a laptop in a school media room", "a tripod standing in the corner"},
	{"{polishes|polishing} a pair of leather boots in a cobbler's workshop", "leather scraps everywhere",
		"{polishes|polishing} {p} school shoes in a cobbler's workshop", "leather scraps everywhere"},
	{"{leads|leading} a guided tour through a museum gallery", "ancient statues lining the hall",
		"{gives|giving} a guided tour of a school art exhibit", "paintings pinned to the walls"},
	{"{supervises|supervising} a recycling line at a processing plant", "conveyor belts full of bottles",
		"{visits|visiting} a recycling plant on a school trip", "conveyor belts full of bottles"},
	{"{sews|sewing} a dress on a sewing machine in a fashion studio", "mannequins by the window",
		"{sews|sewing} a simple pillow in a sewing class", "fabric scraps by the window"},
	{"{repairs|repairing} a bicycle in a busy repair shop", "inner tubes hanging from the ceiling",
		"{pumps|pumping} up a bicycle tire in a busy repair shop", "inner tubes hanging from the ceiling"},
	{"{drives|driving} a forklift through a warehouse", "tall shelves of cardboard boxes",
		"{counts|counting} boxes with a clipboard in a warehouse", "tall shelves of cardboard boxes"},
	{"{arranges|arranging} instruments in a bright dental clinic", "a reclining chair under the lamp",
		"{sits|sitting} in the chair at a bright dental clinic", "a new toothbrush in {p} hand"},
	{"{grades|grading} papers in an empty classroom", "late afternoon light on the desks",
		"{does|doing} homework in an empty classroom after school", "late afternoon light on the desks"},
	{"{photographs|photographing} a product in a photo studio", "softboxes and a white backdrop",
		"{poses|posing} for a school photo in a photo studio", "softboxes and a white backdrop"},
	{"{shapes|shaping} molten glass in a glassblowing studio", "the furnace glowing orange",
		"{watches|watching} the furnace glow in a glassblowing studio", "wearing safety glasses"},
	{"{checks|checking} a tablet on a factory floor", "robotic arms assembling cars",
		"{watches|watching} robotic arms on a factory tour", "a visitor badge on {p} shirt"},
	{"{works|working} the night shift at a hospital nursing station", "monitors glowing in the dim corridor",
		"{reads|reading} a picture book in a hospital waiting room", "a fish tank glowing in the corner"},
	{"{negotiates|negotiating} a contract in a corner office", "a city view behind the desk",
		"{spins|spinning} a desk globe in a corner office", "a city view behind the desk"},
}

// cultural: cultural or recreational occasions.
var cultural = []situation{
	{"{dances|dancing} at a lantern festival", "paper lanterns glowing overhead", "", ""},
	{"{plays|playing} a saxophone in a dim jazz club", "a spotlight cutting through the haze",
		"{plays|playing} the violin at a school recital", "a spotlight on the stage"},
	{"{admires|admiring} a painting in a quiet art museum", "gilded frames on white walls", "", ""},
	{"{bowls|bowling} at a retro bowling alley", "neon lights above the lanes", "", ""},
	{"{watches|watching} fireworks from a crowded riverbank", "the sky bursting with color", "", ""},
	{"{sings|singing} karaoke in a private room", "flashing lights and a glittery microphone", "", ""},
	{"{cheers|cheering} in the stands of a football stadium", "a team scarf around {p} neck", "", ""},
	{"{plays|playing} chess in a park pavilion", "a ticking clock beside the board", "", ""},
	{"{performs|performing} in a community theater play", "a painted backdrop behind", "", ""},
	{"{throws|throwing} a pot on a wheel in a ceramics class", "clay up to {p} elbows", "", ""},
	{"{flips|flipping} through crates in a vinyl record shop", "album covers lining the walls", "", ""},
	{"{rides|riding} a carousel at a county fair", "painted horses and twinkling lights", "", ""},
	{"{plays|playing} a board game at a cozy game cafe", "dice and cards scattered on the table", "", ""},
	{"{lights|lighting} clay lamps during a Diwali celebration", "rows of tiny flames glowing", "", ""},
	{"{watches|watching} a movie in a dark cinema", "a tub of popcorn in {p} lap", "", ""},
	{"{tries|trying} street food at a night market", "steam rising from the stalls", "", ""},
	{"{practices|practicing} calligraphy at a cultural center", "brushes and ink on rice paper", "", ""},
	{"{wears|wearing} a superhero costume at a comic convention", "colorful booths behind", "", ""},
	{"{plays|playing} drums on stage at a music festival", "confetti drifting through the air",
		"{plays|playing} a drum in a school marching band", "sunlight flashing on brass instruments"},
	{"{dances|dancing} salsa in a lively dance hall", "colored lights sweeping the floor",
		"{learns|learning} salsa steps in a lively dance hall", "colored lights sweeping the floor"},
	{"{visits|visiting} an ancient stone temple", "incense smoke drifting in the sunlight", "", ""},
	{"{watches|watching} a puppet show at a street fair", "a striped curtain around the stage", "", ""},
	{"{reads|reading} poetry at an open mic night in a cafe", "string lights above the stage",
		"{reads|reading} a poem aloud at a library story hour", "beanbags and a cozy rug"},
	{"{paints|painting} at an easel in a weekend art class", "jars of brushes nearby", "", ""},
	{"{carves|carving} a pumpkin at a Halloween party", "glowing jack-o'-lanterns on the table", "", ""},
	{"{decorates|decorating} a Christmas tree in a warm living room", "ornaments and tinsel everywhere", "", ""},
	{"{plays|playing} the guitar around a campfire", "sparks drifting upward", "", ""},
	{"{watches|watching} a dragon dance at a Lunar New Year parade", "red lanterns strung overhead", "", ""},
	{"{sits|sitting} in the audience at a ballet performance", "the stage glowing in soft blue light", "", ""},
	{"{skates|skating} at an indoor ice rink", "music echoing off the ice", "", ""},
	{"{tours|touring} a medieval castle", "stone walls hung with tapestries", "", ""},
	{"{plays|playing} pinball in a noisy arcade", "flashing screens all around", "", ""},
	{"{plays|playing} table tennis at a community center", "a bright green table and a white ball", "", ""},
	{"{aims|aiming} a bow at an archery range", "colorful targets in the distance", "", ""},
	{"{laughs|laughing} at a stand-up comedy show in a small club", "a brick wall behind the stage",
		"{laughs|laughing} at a magic show at a birthday party", "balloons tied to the chairs"},
	{"{swims|swimming} laps in an indoor pool", "lane ropes and echoing splashes", "", ""},
	{"{climbs|climbing} an indoor bouldering wall", "chalk dust on {p} hands", "", ""},
	{"{gives|giving} a toast at a wedding reception", "fairy lights over the dance floor",
		"{dances|dancing} at a wedding reception", "fairy lights over the dance floor"},
	{"{blows|blowing} out the candles on a birthday cake", "balloons and streamers everywhere", "", ""},
	{"{plays|playing} mahjong at a neighborhood club", "tiles clacking on the table",
		"{plays|playing} dominoes at a neighborhood club", "tiles clacking on the table"},
	{"{tastes|tasting} wine at a vineyard harvest festival", "oak barrels stacked behind",
		"{tastes|tasting} grape juice at a vineyard harvest festival", "oak barrels stacked behind"},
	{"{competes|competing} in a video game tournament", "giant screens glowing overhead", "", ""},
	{"{walks|walking} through an aquarium tunnel", "sharks gliding overhead", "", ""},
	{"{stands|standing} beneath a dinosaur skeleton in a natural history museum", "sunlight through tall windows", "", ""},
	{"{wears|wearing} a kimono at a summer festival", "paper fans and food stalls all around", "", ""},
	{"{listens|listening} to an orchestra in a grand concert hall", "chandeliers glittering overhead", "", ""},
	{"{plays|playing} pool in a quiet billiard hall", "a lamp hanging over the green felt",
		"{plays|playing} air hockey in a busy game room", "neon lights over the table"},
	{"{learns|learning} a folk dance at a cultural festival", "colorful ribbons swirling", "", ""},
	{"{rides|riding} a roller coaster at an amusement park", "the track looping behind", "", ""},
	{"{browses|browsing} the stalls of a Christmas market", "mulled cider steaming in paper cups",
		"{browses|browsing} the stalls of a Christmas market", "hot cocoa steaming in paper cups"},
}

// outdoor: outdoor activities.
var outdoor = []situation{
	{"{hikes|hiking} up a rocky mountain trail", "a pine forest stretching below", "", ""},
	{"{kayaks|kayaking} on a calm lake at sunrise", "mist rising off the water", "", ""},
	{"{cycles|cycling} along a winding coastal road", "waves crashing on the rocks below", "", ""},
	{"{fishes|fishing} from a wooden dock", "a red bobber floating on the water", "", ""},
	{"{skis|skiing} down a snowy slope", "powder spraying behind", "", ""},
	{"{pitches|pitching} a tent in a forest clearing", "backpacks lying in the grass", "", ""},
	{"{climbs|climbing} a granite cliff on a rope", "a green valley far below",
		"{climbs|climbing} a low boulder in a harness", "a green valley far below"},
	{"{rides|riding} a surfboard on a rolling wave", "spray glittering in the sunlight", "", ""},
	{"{plants|planting} tomatoes in a backyard garden", "a watering can nearby", "", ""},
	{"{jogs|jogging} along a riverside path at dawn", "fog drifting over the water", "", ""},
	{"{flies|flying} a kite on a windy hilltop", "clouds racing overhead", "", ""},
	{"{paddles|paddling} a canoe down a slow river", "willows leaning over the banks", "", ""},
	{"{makes|making} snow angels in a fresh snowfall", "pine trees dusted white", "", ""},
	{"{rides|riding} a horse through a golden meadow", "tall grass swaying in the wind", "", ""},
	{"{skateboards|skateboarding} at an outdoor skate park", "graffiti covering the ramps", "", ""},
	{"{picks|picking} apples in an orchard", "a wicker basket half full", "", ""},
	{"{snowshoes|snowshoeing} through a quiet winter forest", "fresh tracks trailing behind", "", ""},
	{"{watches|watching} the sunset from a mountain summit", "clouds glowing pink and gold", "", ""},
	{"{swims|swimming} in a clear mountain lake", "sunlight dancing on the water", "", ""},
	{"{explores|exploring} tide pools on a rocky shore", "a starfish in the shallows", "", ""},
	{"{rides|riding} a mountain bike down a dusty trail", "dust kicking up behind", "", ""},
	{"{rakes|raking} autumn leaves into a big pile", "orange and red leaves everywhere", "", ""},
	{"{roasts|roasting} marshmallows over a campfire", "sparks drifting into the night", "", ""},
	{"{throws|throwing} a frisbee in a sunny park", "a dog racing after the disc", "", ""},
	{"{sails|sailing} a small boat across a breezy bay", "white sails against a blue sky",
		"{steers|steering} a small sailboat at a summer sailing camp", "white sails against a blue sky"},
	{"{watches|watching} birds through binoculars in a marsh", "reeds swaying in the breeze", "", ""},
	{"{crosses|crossing} a rope bridge over a canyon", "a river glinting far below", "", ""},
	{"{plays|playing} soccer on a muddy field", "rain falling steadily", "", ""},
	{"{wades|wading} across a shallow stream", "{p} boots held in one hand", "", ""},
	{"{rides|riding} a sled down a snowy hill", "snow flying up behind", "", ""},
	{"{photographs|photographing} wildflowers in an alpine meadow", "snowy peaks beyond", "", ""},
	{"{rows|rowing} a boat across a misty lake", "oars dripping with every stroke", "", ""},
	{"{scrambles|scrambling} over sand dunes in the desert", "ripples stretching across the sand", "", ""},
	{"{collects|collecting} seashells along a quiet beach", "waves lapping at {p} feet", "", ""},
	{"{hikes|hiking} through a bamboo forest", "green light filtering down", "", ""},
	{"{fishes|fishing} through a hole in a frozen lake", "a small orange tent nearby", "", ""},
	{"{rollerblades|rollerblading} along a seaside promenade", "palm trees swaying overhead", "", ""},
	{"{splashes|splashing} through puddles on a rainy trail", "wearing a yellow raincoat", "", ""},
	{"{feeds|feeding} goats on a hillside farm", "wooden fences and rolling green hills", "", ""},
	{"{climbs|climbing} an old oak tree in a meadow", "sunlight flickering through the leaves", "", ""},
	{"{does|doing} yoga on a grassy cliff above the sea", "the wind rippling the grass", "", ""},
	{"{floats|floating} on an inner tube down a lazy river", "trees arching overhead", "", ""},
	{"{plays|playing} golf on a rolling green course", "a flag fluttering on the green", "", ""},
	{"{wanders|wandering} through a field of sunflowers", "bees buzzing all around", "", ""},
	{"{chops|chopping} firewood beside a log cabin", "smoke curling from the chimney",
		"{stacks|stacking} firewood beside a log cabin", "smoke curling from the chimney"},
	{"{searches|searching} for fossils on a rocky beach", "a small hammer in hand", "", ""},
	{"{runs|running} a trail race through the hills", "a race number pinned to {p} shirt", "", ""},
	{"{treks|trekking} across a glacier", "blue ice and distant peaks", "", ""},
	{"{reads|reading} a trail map at a forest junction", "wooden signposts pointing every way", "", ""},
	{"{catches|catching} fireflies in a summer meadow at dusk", "tiny lights blinking in the grass", "", ""},
}

// situations returns the bank of a setting of Settings, or nil for another name.
func situations(setting string) []situation {
	switch setting {
	case "daily":
		return daily
	case "professional":
		return professional
	case "cultural":
		return cultural
	case "outdoor":
		return outdoor
	}
	return nil
}

// verbForm picks which side of "{simple|continuous}" a frame uses.
type verbForm int

const (
	simple     verbForm = iota // "reads"
	continuous                 // "reading"
)

// sceneFrame is how a prompt opens: lead goes before the verb phrase, with "{s}" for the
// subject word and "{adj}" for an article and adjective ("an excited").
type sceneFrame struct {
	lead string
	form verbForm
}

// sceneFrames vary the article, the verb form and the framing of scene prompts.
var sceneFrames = []sceneFrame{
	{"a {s}", simple},
	{"a {s} is", continuous},
	{"the {s}", simple},
	{"{adj} {s}", continuous},
	{"a photo of a {s}", continuous},
	{"{adj} {s}", simple},
	{"the {s} is", continuous},
	{"a candid shot of a {s}", continuous},
}

// Adjectives of the "{adj}" frames: moods and states, never identity (age, hair, skin), which
// the subject code must decide.
var (
	adultAdjectives = []string{"smiling", "cheerful", "focused", "relaxed", "contented"}
	kidAdjectives   = []string{"smiling", "cheerful", "excited", "curious", "eager"}
)

// isKid reports whether subject is a child's word.
func isKid(subject string) bool { return subject == "boy" || subject == "girl" }

// possessive returns the possessive pronoun of subject.
func possessive(subject string) string {
	switch subject {
	case "man", "boy":
		return "his"
	case "woman", "girl":
		return "her"
	}
	return "their"
}

// sceneSet realises every situation of every setting for every subject.
func sceneSet() ([]Prompt, error) {
	out := make([]Prompt, 0, len(Subjects)*len(Settings)*perSetting)
	for si, subject := range Subjects {
		for ti, setting := range Settings {
			bank := situations(setting)
			if len(bank) != perSetting {
				return nil, fmt.Errorf("prompts: setting %s has %d situations, want %d", setting, len(bank), perSetting)
			}
			for k, s := range bank {
				text, err := sceneText(s, subject, k, si, ti)
				if err != nil {
					return nil, fmt.Errorf("prompts: %s situation %d (%q), %s: %w", setting, k+1, s.act, subject, err)
				}
				out = append(out, Prompt{Subject: subject, Setting: setting, Text: text})
			}
		}
	}
	return out, nil
}

// sceneText writes situation s (number k of setting ti) for subject number si of Subjects. The
// frame steps by 3 across subjects (coprime to the 8 frames), so the five subjects of a
// situation open five different ways; two in three prompts keep the trailing detail.
func sceneText(s situation, subject string, k, si, ti int) (string, error) {
	act, detail := s.act, s.detail
	adjs := adultAdjectives
	if isKid(subject) {
		adjs = kidAdjectives
		if s.kidAct != "" {
			act, detail = s.kidAct, s.kidDetail
		}
	}
	f := sceneFrames[(5*k+3*si+ti)%len(sceneFrames)]
	adj := adjs[(k+2*si+ti)%len(adjs)]
	lead := strings.ReplaceAll(f.lead, "{adj}", phrases.Article(adj)+" "+adj)
	lead = strings.ReplaceAll(lead, "{s}", subject)
	verb, err := expand(act, f.form, subject)
	if err != nil {
		return "", err
	}
	text := lead + " " + verb
	if detail != "" && (k+si)%3 != 0 {
		d, err := expand(detail, f.form, subject)
		if err != nil {
			return "", err
		}
		if withDetail := text + ", " + d; len(strings.Fields(withDetail)) <= maxSceneWords {
			text = withDetail
		}
	}
	return capitalize(text) + ".", nil
}

// expand replaces "{simple|continuous}" by the side of form and "{p}" by subject's possessive
// pronoun. It returns an error for an unclosed brace or an unknown placeholder.
func expand(tmpl string, form verbForm, subject string) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unclosed %q in %q", "{", tmpl)
		}
		b.WriteString(tmpl[:i])
		inner := tmpl[i+1 : i+j]
		switch sides := strings.Split(inner, "|"); {
		case inner == "p":
			b.WriteString(possessive(subject))
		case len(sides) == 2 && sides[0] != "" && sides[1] != "":
			b.WriteString(sides[form])
		default:
			return "", fmt.Errorf("placeholder {%s} in %q: want {p} or {simple|continuous}", inner, tmpl)
		}
		tmpl = tmpl[i+j+1:]
	}
	out := b.String()
	if strings.ContainsAny(out, "{}|") {
		return "", fmt.Errorf("stray brace or bar in %q", out)
	}
	return out, nil
}

// capitalize upper-cases the first letter of s.
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// ---- Tiny scenes (tiny vocabulary) ----

// tinyPlace is a synthfaces scene of a setting with the activities that fit it there: adults
// do any of acts, children only those of kidActs.
type tinyPlace struct {
	scene         string
	acts, kidActs []string
	night         bool // "at night" reads naturally here
}

// tinySettings maps each setting to the synthfaces scenes that stand for it.
var tinySettings = map[string][]tinyPlace{
	"daily": {
		{"kitchen", []string{"cooking", "standing", "sitting", "reading", "smiling", "laughing"}, []string{"cooking", "standing", "sitting", "reading", "playing", "laughing"}, true},
		{"street", []string{"walking", "standing", "smiling", "sitting"}, []string{"walking", "standing", "playing", "smiling"}, true},
	},
	"professional": {
		{"office", []string{"working", "sitting", "reading", "standing"}, []string{"sitting", "reading", "standing"}, true},
		{"library", []string{"reading", "working", "sitting", "standing"}, []string{"reading", "sitting", "standing"}, false},
	},
	"cultural": {
		{"stage", []string{"singing", "playing", "standing", "laughing"}, []string{"singing", "playing", "standing", "laughing"}, true},
		{"beach", []string{"playing", "sitting", "reading", "laughing"}, []string{"playing", "sitting", "laughing", "singing"}, false},
	},
	"outdoor": {
		{"park", []string{"walking", "playing", "sitting", "reading"}, []string{"walking", "playing", "sitting", "standing"}, false},
		{"forest", []string{"walking", "standing"}, []string{"walking", "standing", "playing"}, false},
		{"beach", []string{"walking", "standing"}, []string{"walking", "standing"}, false},
	},
}

// Tiny phrase banks, all in the tiny vocabulary and all image-level attributes of synthfaces
// (expression, accessories, shirt, pose, lighting): nothing that names an identity.
var (
	tinyFrames   = []string{"", "", "", "a photo of ", "a picture of ", "an image of ", "there is ", "a portrait of "}
	tinyPre      = []string{"smiling", "laughing", "surprised", "sleepy"}
	tinyShirts   = []string{"red", "blue", "green", "yellow", "white", "black", "purple"}
	tinyWearings = []string{"glasses", "sunglasses", "a cap", "a beanie", "a sun hat"}
	tinyPoses    = []string{"looking at the camera", "facing the camera", "facing left", "facing right", "turned to the left", "turned to the right"}
	tinyLights   = []string{"in bright light", "in soft light", "in dim light"}
)

// tinyPromptsTries bounds the draws spent on one (subject, setting) cell.
const tinyPromptsTries = 20000

// tinySceneSet draws perSetting distinct prompts for every subject and setting, cycling through
// the setting's scenes so that each gets its share.
func tinySceneSet() ([]Prompt, error) {
	out := make([]Prompt, 0, len(Subjects)*len(Settings)*perSetting)
	seen := map[string]bool{}
	for si, subject := range Subjects {
		for ti, setting := range Settings {
			places := tinySettings[setting]
			rng := newMixer(uint64(si*len(Settings) + ti))
			n := 0
			for try := 0; n < perSetting && try < tinyPromptsTries; try++ {
				text := tinyText(&rng, subject, places[n%len(places)])
				if seen[text] {
					continue
				}
				seen[text] = true
				out = append(out, Prompt{Subject: subject, Setting: setting, Text: text})
				n++
			}
			if n < perSetting {
				return nil, fmt.Errorf("prompts: tiny-scenes %s/%s: found only %d distinct prompts, want %d", subject, setting, n, perSetting)
			}
		}
	}
	return out, nil
}

// tinyText draws one tiny-world caption of subject at place, in the template captioner's style:
// [frame] a [expression] subject [wearing ...] [pose] [activity] scene [lighting | at night].
func tinyText(rng *mixer, subject string, place tinyPlace) string {
	acts := place.acts
	if isKid(subject) {
		acts = place.kidActs
	}
	act := ""
	if rng.chance(0.75) {
		act = acts[rng.intn(len(acts))]
	}
	pre := ""
	if act != "smiling" && act != "laughing" && rng.chance(0.3) {
		pre = tinyPre[rng.intn(len(tinyPre))]
	}
	var posts []string
	wear := rng.intn(10)
	switch {
	case wear < 3:
		w := tinyWearings[rng.intn(len(tinyWearings))]
		if w == "sunglasses" && pre == "sleepy" {
			w = "glasses" // closed eyes are invisible behind sunglasses
		}
		posts = append(posts, "wearing "+w)
	case wear < 5:
		c := tinyShirts[rng.intn(len(tinyShirts))]
		if rng.chance(0.5) {
			posts = append(posts, "in "+phrases.Article(c)+" "+c+" shirt")
		} else {
			posts = append(posts, "wearing "+phrases.Article(c)+" "+c+" shirt")
		}
	case wear == 5 && subject != "man" && subject != "boy":
		posts = append(posts, "wearing hoop earrings")
	}
	if pre == "" && act == "" && rng.chance(0.25) {
		posts = append(posts, "with a neutral expression")
	}
	if act == "" && rng.chance(0.4) {
		posts = append(posts, tinyPoses[rng.intn(len(tinyPoses))])
	}
	scene := phrases.Scene(place.scene)[rng.intn(2)]
	tail := ""
	switch x := rng.intn(10); {
	case x < 2:
		tail = " " + tinyLights[rng.intn(len(tinyLights))]
	case x < 4 && place.night:
		tail = " at night"
	}

	np := subject
	if pre != "" {
		np = pre + " " + subject
	}
	np = phrases.Article(np) + " " + np
	if len(posts) > 0 {
		np += " " + strings.Join(posts, " ")
	}
	frame := tinyFrames[rng.intn(len(tinyFrames))]
	switch {
	case frame == "" && act != "" && rng.chance(0.15):
		// "in the kitchen, a man is cooking."
		return scene + ", " + np + " is " + act + tail + "."
	case frame == "" && act != "" && act != "smiling" && act != "laughing" && rng.chance(0.35):
		// "a man is cooking in the kitchen."
		return np + " is " + act + " " + scene + tail + "."
	case frame == "" && act == "smiling" && rng.chance(0.4):
		return np + " smiles " + scene + tail + "."
	}
	if act != "" {
		np += " " + act
	}
	return frame + np + " " + scene + tail + "."
}

// mixer is a splitmix64 generator: a fixed algorithm, so data/ stays byte-identical across Go
// versions (math/rand's streams are not promised to).
type mixer struct{ state uint64 }

// newMixer returns a generator for stream i. The start state is i scrambled, so that streams
// are not shifted copies of one another (splitmix64 steps its state by a constant).
func newMixer(i uint64) mixer { return mixer{state: scramble(i ^ 0x70726f6d707473)} } // "prompts"

func (m *mixer) next() uint64 {
	m.state += 0x9e3779b97f4a7c15
	return scramble(m.state)
}

// scramble is splitmix64's output function.
func scramble(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a number in [0, n).
func (m *mixer) intn(n int) int { return int(m.next() % uint64(n)) }

// chance returns true with probability p.
func (m *mixer) chance(p float64) bool { return float64(m.next()>>11)/(1<<53) < p }

// ---- Two-subject sets ----

// multiPrompts are natural two-subject prompts for the paper-scale multi-subject figure.
var multiPrompts = []Prompt{
	{"man+woman", "daily", "A man and a woman share an umbrella on a rainy city street."},
	{"boy+girl", "outdoor", "A boy and a girl fly a kite together on a windy hill."},
	{"woman+girl", "outdoor", "A woman teaches a girl to ride a bicycle in a sunny park."},
	{"man+boy", "outdoor", "A man and a boy fish from a wooden dock at sunrise."},
	{"person+man", "cultural", "A person and a man play chess at a small table in a quiet cafe."},
	{"woman+man", "professional", "A woman and a man discuss plans over a laptop in a bright office."},
	{"girl+boy", "cultural", "A girl and a boy build a sandcastle at a busy beach festival."},
	{"man+girl", "daily", "A man reads a bedtime story to a girl in a cozy bedroom."},
	{"woman+boy", "daily", "A woman and a boy bake cookies in a sunlit kitchen."},
	{"person+woman", "outdoor", "A person and a woman hike up a rocky trail above the clouds."},
}

// tinyMultiPrompts are two-subject prompts in the tiny vocabulary.
var tinyMultiPrompts = []Prompt{
	{"man+woman", "outdoor", "a man and a woman in the park."},
	{"boy+girl", "cultural", "a photo of a boy and a girl together on a beach."},
	{"woman+girl", "daily", "a woman next to a girl in the kitchen."},
	{"man+boy", "outdoor", "a man and a boy walking in the woods."},
	{"girl+man", "daily", "a smiling girl and a man on the street."},
	{"woman+man", "professional", "a woman and a man working in an office."},
	{"person+boy", "professional", "a person next to a boy in the library."},
	{"girl+woman", "cultural", "a girl and a woman singing on stage."},
	{"boy+person", "outdoor", "a portrait of a boy and a person together in a park."},
	{"man+girl", "cultural", "a man and a girl playing at the beach."},
}
