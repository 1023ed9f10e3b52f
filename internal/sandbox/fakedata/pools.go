package fakedata

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// word is a pool entry: the display value, the same value boxed once (so handing it out as a map value
// does not allocate), and its ASCII slug for emails and domains.
type word struct {
	s    string
	v    any
	slug string
}

func w(s string) word { return word{s: s, v: s, slug: slug(s)} }

func words(list ...string) []word {
	out := make([]word, len(list))
	for i, s := range list {
		out[i] = w(s)
	}
	return out
}

// slug lower-cases s and folds it to ASCII letters and digits: diacritics are dropped (Zoë → zoe,
// Nguyễn → nguyen), letters NFD cannot decompose are transliterated (Øyvind → oyvind, ß → ss), and
// anything else is removed, so addresses built from it are valid without quoting.
func slug(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(unicode.ToLower(r))
		case unicode.Is(unicode.Mn, r):
		default:
			switch unicode.ToLower(r) {
			case 'ø':
				b.WriteByte('o')
			case 'đ':
				b.WriteByte('d')
			case 'ß':
				b.WriteString("ss")
			case 'æ':
				b.WriteString("ae")
			case 'ł':
				b.WriteByte('l')
			}
		}
	}
	return b.String()
}

// city is one place a record can be: its state or region as a real org stores it, and a postal code
// pattern where '#' is a random digit and '@' a random capital letter.
type city struct {
	name, state      word
	postal, areaCode string
}

// locale groups the names, places and phone style of one country so a record is consistent: a Bergen
// address comes with a +47 phone number and, mostly, a Norwegian name.
type locale struct {
	country    word
	weight     int
	cities     []city
	streets    []string // street names
	streetFmt  int      // 0: "12 Main Street"; 1: "Hauptstraße 12"
	houseMax   int      // highest house number
	secondLine string   // pattern of an optional second street line (suite, floor), "" for none
	phoneFmts  []string // '#' a random digit, 'A' the area code
	firstNames []word
	lastNames  []word
}

var locales = []*locale{
	{
		country: w("United States"), weight: 45, houseMax: 9899, secondLine: "\nSuite 1##",
		cities: []city{
			{w("San Francisco"), w("CA"), "941##", "415"}, {w("New York"), w("NY"), "100##", "212"},
			{w("Chicago"), w("IL"), "606##", "312"}, {w("Austin"), w("TX"), "787##", "512"},
			{w("Seattle"), w("WA"), "981##", "206"}, {w("Boston"), w("MA"), "021##", "617"},
			{w("Denver"), w("CO"), "802##", "303"}, {w("Atlanta"), w("GA"), "303##", "404"},
			{w("Portland"), w("OR"), "972##", "503"}, {w("Minneapolis"), w("MN"), "554##", "612"},
			{w("Raleigh"), w("NC"), "276##", "919"}, {w("Phoenix"), w("AZ"), "850##", "602"},
		},
		streets: []string{"Market Street", "Main Street", "Oak Avenue", "Maple Drive", "Pine Street",
			"Cedar Lane", "Lakeview Boulevard", "Washington Avenue", "Park Place", "Elm Street",
			"Sunset Boulevard", "Mission Street", "Broadway", "Highland Avenue", "River Road"},
		phoneFmts: []string{"(A) 555-01##", "A-555-01##", "+1 A 555 01##", "(A) 555-01## x###"},
		firstNames: words("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda",
			"William", "Elizabeth", "Christopher", "Jessica", "Daniel", "Sarah", "Matthew", "Karen", "Anthony",
			"Ashley", "Joshua", "Emily", "Andrew", "Megan", "Kevin", "Rachel", "Brian", "Lauren", "Zoë",
			"Tyler", "Hannah", "Jordan", "Taylor", "Aaliyah", "DeShawn", "Priya", "Wei", "Mateo", "Renée"),
		lastNames: words("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
			"Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris",
			"Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green",
			"O'Brien", "McAllister", "Patel", "Kim", "Chen", "Rodríguez", "Nguyen", "Van der Berg"),
	},
	{
		country: w("United Kingdom"), weight: 12, houseMax: 250, secondLine: "\nFlat #",
		cities: []city{
			{w("London"), w("Greater London"), "SW1A #@@", "20"}, {w("Manchester"), w("Greater Manchester"), "M# #@@", "161"},
			{w("Edinburgh"), w("Scotland"), "EH# #@@", "131"}, {w("Bristol"), w("Bristol"), "BS# #@@", "117"},
			{w("Leeds"), w("West Yorkshire"), "LS# #@@", "113"}, {w("Cardiff"), w("Wales"), "CF## #@@", "29"},
		},
		streets: []string{"High Street", "Station Road", "Church Lane", "Victoria Road", "Green Lane",
			"Mill Road", "Kings Road", "Queen Street", "The Crescent", "Park Avenue"},
		phoneFmts: []string{"+44 A 7946 0###", "0A 7946 0###", "+44 (0)A 7946 0###"},
		firstNames: words("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Jack", "Zoë", "Charlie",
			"Chloë", "Thomas", "Sophie", "Alfie", "Grace", "Freddie", "Poppy", "Siobhán", "Eilidh", "Rhys",
			"Niamh", "Callum", "Imogen"),
		lastNames: words("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
			"Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood",
			"Ó Súilleabháin", "MacLeod", "Fitzgerald", "Hughes"),
	},
	{
		country: w("Germany"), weight: 10, houseMax: 180, secondLine: "\n#. OG",
		cities: []city{
			{w("Berlin"), w("Berlin"), "10###", "30"}, {w("München"), w("Bayern"), "80###", "89"},
			{w("Hamburg"), w("Hamburg"), "20###", "40"}, {w("Köln"), w("Nordrhein-Westfalen"), "50###", "221"},
			{w("Frankfurt am Main"), w("Hessen"), "60###", "69"}, {w("Düsseldorf"), w("Nordrhein-Westfalen"), "40###", "211"},
		},
		streets: []string{"Hauptstraße", "Friedrichstraße", "Bahnhofstraße", "Schillerstraße",
			"Goethestraße", "Gartenweg", "Lindenallee", "Königsallee", "Marktplatz", "Mühlenweg"},
		streetFmt: 1,
		phoneFmts: []string{"+49 A #######", "+49 (0)A ### ###-##", "0A ########"},
		firstNames: words("Jürgen", "Anna", "Lukas", "Lena", "Maximilian", "Sophie", "Jörg", "Katrin",
			"Felix", "Marie", "Björn", "Jana", "Matthias", "Sabine", "Tobias", "Ute", "Dörte", "Sebastian"),
		lastNames: words("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
			"Schulz", "Hoffmann", "Schröder", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Groß", "Köhler"),
	},
	{
		country: w("France"), weight: 8, houseMax: 120, secondLine: "\nBâtiment @",
		cities: []city{
			{w("Paris"), w("Île-de-France"), "750##", "1"}, {w("Lyon"), w("Auvergne-Rhône-Alpes"), "6900#", "4"},
			{w("Marseille"), w("Provence-Alpes-Côte d'Azur"), "130##", "4"}, {w("Toulouse"), w("Occitanie"), "310##", "5"},
			{w("Nantes"), w("Pays de la Loire"), "440##", "2"}, {w("Lille"), w("Hauts-de-France"), "590##", "3"},
		},
		streets: []string{"rue de la Paix", "avenue des Champs-Élysées", "rue du Faubourg Saint-Honoré",
			"boulevard Haussmann", "rue Victor Hugo", "place Bellecour", "rue de la République",
			"quai de la Fosse", "rue Nationale", "avenue Jean Jaurès"},
		phoneFmts: []string{"+33 A ## ## ## ##", "0A ## ## ## ##"},
		firstNames: words("François", "Hélène", "Émilie", "Jérôme", "Camille", "Louis", "Léa", "Gabriel",
			"Chloé", "Théo", "Manon", "Hugo", "Inès", "Mathéo", "Céline", "Benoît", "Noémie", "Raphaël"),
		lastNames: words("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
			"Leroy", "Moreau", "Lefèvre", "Fournier", "Girard", "Bonnet", "Rousseau", "Faure", "Mercier", "Lemaître"),
	},
	{
		country: w("Spain"), weight: 6, houseMax: 150, secondLine: "\n#º @",
		cities: []city{
			{w("Madrid"), w("Comunidad de Madrid"), "280##", "91"}, {w("Barcelona"), w("Cataluña"), "080##", "93"},
			{w("Valencia"), w("Comunidad Valenciana"), "460##", "96"}, {w("Sevilla"), w("Andalucía"), "410##", "95"},
			{w("Málaga"), w("Andalucía"), "290##", "95"}, {w("Bilbao"), w("País Vasco"), "480##", "94"},
		},
		streets: []string{"Calle Mayor", "Gran Vía", "Calle de Alcalá", "Paseo de Gracia", "Calle Real",
			"Avenida de la Constitución", "Calle del Carmen", "Rambla de Catalunya", "Calle Sierpes"},
		streetFmt: 1,
		phoneFmts: []string{"+34 A ### ## ##", "A ### ## ##"},
		firstNames: words("José", "María", "Sofía", "Javier", "Lucía", "Álvaro", "Martín", "Elena",
			"Sergio", "Paula", "Andrés", "Nuria", "Íñigo", "Begoña", "Pablo", "Carmen", "Ramón", "Inés"),
		lastNames: words("García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez",
			"Pérez", "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Muñoz", "Ibáñez", "Álvarez", "Castaño"),
	},
	{
		country: w("Mexico"), weight: 6, houseMax: 900, secondLine: "\nPiso #",
		cities: []city{
			{w("Ciudad de México"), w("CDMX"), "06###", "55"}, {w("Guadalajara"), w("Jalisco"), "44###", "33"},
			{w("Monterrey"), w("Nuevo León"), "64###", "81"}, {w("Puebla"), w("Puebla"), "72###", "222"},
			{w("Querétaro"), w("Querétaro"), "76###", "442"}, {w("Mérida"), w("Yucatán"), "97###", "999"},
		},
		streets: []string{"Avenida Reforma", "Calle Madero", "Avenida Insurgentes Sur", "Calle Juárez",
			"Avenida Chapultepec", "Calle Hidalgo", "Avenida Vallarta", "Calle 5 de Mayo", "Calzada Independencia"},
		streetFmt: 1,
		phoneFmts: []string{"+52 A #### ####", "(A) #### ####"},
		firstNames: words("José", "Guadalupe", "Juan", "María", "Luis", "Fernanda", "Alejandro", "Ximena",
			"Diego", "Valentina", "Santiago", "Regina", "Emilio", "Renata", "Julián", "Citlali", "Ángel", "Dolores"),
		lastNames: words("Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez",
			"Sánchez", "Ramírez", "Cruz", "Flores", "Gómez", "Morales", "Vázquez", "Reyes", "Jiménez", "Núñez", "Peña"),
	},
	{
		country: w("Norway"), weight: 5, houseMax: 90, secondLine: "",
		cities: []city{
			{w("Oslo"), w("Oslo"), "0###", "22"}, {w("Bergen"), w("Vestland"), "50##", "55"},
			{w("Trondheim"), w("Trøndelag"), "70##", "73"}, {w("Stavanger"), w("Rogaland"), "40##", "51"},
			{w("Tromsø"), w("Troms"), "90##", "77"},
		},
		streets: []string{"Storgata", "Kirkegata", "Karl Johans gate", "Bryggen", "Strandgata",
			"Dronningens gate", "Møllergata", "Skippergata", "Kongens gate"},
		streetFmt: 1,
		phoneFmts: []string{"+47 A ## ## ##", "A ## ## ##"},
		firstNames: words("Øyvind", "Bjørn", "Åse", "Håkon", "Ingrid", "Solveig", "Sigrid", "Ola", "Kari",
			"Jørgen", "Astrid", "Eirik", "Tove", "Søren", "Ragnhild", "Magnus", "Siv", "Espen"),
		lastNames: words("Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen",
			"Kristiansen", "Jensen", "Karlsen", "Sørensen", "Haugen", "Bakke", "Dahl", "Lie", "Strøm", "Ødegård", "Berg"),
	},
	{
		country: w("Vietnam"), weight: 8, houseMax: 300, secondLine: "",
		cities: []city{
			{w("Hà Nội"), w("Hà Nội"), "100000", "24"}, {w("Hồ Chí Minh City"), w("Hồ Chí Minh"), "700000", "28"},
			{w("Đà Nẵng"), w("Đà Nẵng"), "550000", "236"}, {w("Hải Phòng"), w("Hải Phòng"), "180000", "225"},
			{w("Cần Thơ"), w("Cần Thơ"), "900000", "292"},
		},
		streets: []string{"Đường Lê Lợi", "Phố Hàng Bài", "Đường Nguyễn Huệ", "Đường Trần Hưng Đạo",
			"Phố Huế", "Đường Lý Thường Kiệt", "Đường Hai Bà Trưng", "Đường Điện Biên Phủ"},
		phoneFmts: []string{"+84 A #### ####", "0A #### ####"},
		firstNames: words("Minh", "Thảo", "Anh", "Dũng", "Hương", "Tuấn", "Linh", "Quang", "Ngọc", "Hùng",
			"Phương", "Trang", "Đức", "Hạnh", "Khánh", "Vy", "Bảo", "Thủy"),
		lastNames: words("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
			"Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý"),
	},
}

var (
	salutations = words("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
	leadSources = words("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
	accountType = words("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")
	industries  = words("Banking", "Consulting", "Education", "Manufacturing", "Retail", "Technology")

	departments = words("Sales", "Marketing", "Finance", "Procurement", "Engineering", "Operations",
		"Human Resources", "Customer Success", "Legal", "IT", "Research & Development", "Support", "Logistics")
	titles = words("CEO", "CFO", "CTO", "VP, Sales", "VP, Marketing", "Director of Operations",
		"Sales Manager", "Account Executive", "Marketing Manager", "Procurement Specialist", "Software Engineer",
		"Senior Software Engineer", "Head of IT", "Finance Manager", "Controller", "Office Manager",
		"Customer Success Manager", "Product Manager", "Buyer", "Operations Analyst", "Legal Counsel",
		"Logistics Coordinator", "Chief Executive Officer", "Regional Sales Director, EMEA")

	// Company names are built from a stem, an optional second word and a legal form, which gives tens of
	// thousands of distinct names.
	companyStems = words("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Brightwater", "Northwind",
		"Contoso", "Fabrikam", "Tailspin", "Wingtip", "Blue Yonder", "Silverline", "Ironbridge", "Redwood",
		"Evergreen", "Summit", "Pinnacle", "Harbor", "Crescent", "Falcon", "Aurora", "Nordlys", "Sólheim",
		"Édition", "Müller & Söhne", "Grupo Peña", "Vạn Phúc", "Keystone", "Lighthouse", "Meridian", "Orion",
		"Polaris", "Quantum", "Riverside", "Sterling", "Trident", "Vanguard", "Zenith", "Alpine", "Beacon",
		"Cobalt", "Delta", "Emerald", "Granite", "Horizon", "Juniper", "Kestrel", "Lumen")
	companyWords = words("", "", "Logistics", "Systems", "Foods", "Energy", "Health", "Analytics", "Capital",
		"Labs", "Manufacturing", "Retail", "Consulting", "Partners", "Media", "Robotics", "Pharma",
		"Software", "Textiles", "Mobility")
	legalForms = []string{"", "", "", "Inc.", "LLC", "Ltd", "GmbH", "S.A.", "SAS", "AS", "Corp.", "Group", "plc"}
	tlds       = []string{"com", "com", "com", "io", "net", "co.uk", "de", "fr", "es", "no", "vn", "com.mx"}
	freeMail   = []string{"gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "gmx.de", "orange.fr"}

	sentences = []string{
		"Met at the regional trade show and asked for a follow-up demo.",
		"Prefers email over phone calls; reply within one business day.",
		"Key decision maker for the renewal due next quarter.",
		"Interested in the analytics add-on and asked about pricing tiers.",
		"Escalated a support case last month; resolved to their satisfaction.",
		"Long-standing customer since the first product release.",
		"Travels often; the assistant handles scheduling.",
		"Requested quarterly business reviews with the account team.",
		"Budget approval expected after the board meeting.",
		"Evaluating two competitors; our integration story is the differentiator.",
		"Signed the master services agreement in March.",
		"Asked to be removed from marketing newsletters but keeps product updates.",
		"Speaks at industry conferences about supply-chain digitalisation.",
		"Runs a team of twelve across three offices.",
		"Referred two other accounts in the past year.",
		"Needs invoices in EUR with the purchase order number on every line.",
		"Onboarding completed; training sessions scheduled for new hires.",
		"Très satisfait du support en français — keep the French-speaking team on the account.",
		"Prefiere reuniones por la mañana (hora de Madrid).",
		"Pilot project in Đà Nẵng went live in the spring.",
		"Mentioned an expansion into the Nordic market, starting with Tromsø.",
		"Data protection officer must review every contract change.",
		"Renewal risk: champion left the company; new sponsor not yet identified.",
		"Uses the mobile app daily and reports bugs with helpful screenshots.",
	}

	websitePrefixes = []string{"https://www.", "https://", "http://www.", "www."}
)
