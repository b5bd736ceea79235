"""Sentences spoken by espeak-ng, per language, and syllable helpers for sung lines.

The sentences were written for this project (short, phonetically varied, Harvard-sentence style);
German, Italian and Latin lyric lines are also taken from the music21 scores' lyrics at run time.
"""
from __future__ import annotations

import re

SENTENCES: dict[str, list[str]] = {
    "en": [
        "The old boat drifted past the quiet harbour at dawn.",
        "Bring the green basket and put it near the kitchen door.",
        "A cold wind blew the paper cups across the yard.",
        "She counted nine red stones along the garden path.",
        "The clock on the tower struck twelve before we left.",
        "Fresh bread smells best when the oven is still warm.",
        "He tied the rope twice around the wooden post.",
        "The children ran down the hill to meet the bus.",
        "Please close the window, the rain is coming in.",
        "A thin layer of ice covered the pond this morning.",
        "We packed the maps, the lamp and a box of matches.",
        "The small dog barked at every car that passed.",
        "Turn left at the bridge and follow the river road.",
        "The music from the hall could be heard across town.",
        "Her silver ring fell into the deep blue water.",
        "They painted the fence white during the long summer.",
        "Each student wrote a short letter to the mayor.",
        "The price of apples went up again this week.",
        "Thick smoke rose slowly from the farmhouse chimney.",
        "I found the missing key under the kitchen table.",
        "The train was late because of snow on the tracks.",
        "Put the heavy books on the lowest shelf.",
        "A flock of geese flew south over the empty field.",
        "The lecture ended with a question nobody could answer.",
        "Warm tea and honey will help your sore throat.",
        "The tailor measured the coat sleeve with great care.",
        "Strong hands lifted the crate onto the truck.",
        "The baby slept through the noise of the storm.",
        "Our neighbour grows tomatoes and beans in the spring.",
        "The pilot checked the fuel before the long flight.",
        "Five brown horses stood still in the morning mist.",
        "Write the date clearly at the top of the page.",
        "The market opens early on Saturday mornings.",
        "A loud bell rang when the doors began to close.",
        "The soup needs more salt and a little pepper.",
        "Light from the lantern danced on the cave walls.",
        "He whistled a tune while fixing the old radio.",
        "The museum keeps its rarest maps in a locked room.",
        "Seven sailors sang while they hauled the nets aboard.",
        "The judge asked the witness to speak more slowly.",
        "Yellow leaves covered the bench in the park.",
        "The engine coughed twice and then started at last.",
        "Good friends will help you carry a heavy load.",
        "The river rose quickly after three days of rain.",
        "Keep the receipt in case the shoes do not fit.",
        "Bright stars filled the sky above the desert camp.",
    ],
    "de": [
        "Der alte Zug fährt langsam über die Brücke.",
        "Im Garten blühen schon die ersten Rosen.",
        "Bitte schließ die Tür, es wird kalt draußen.",
        "Wir treffen uns morgen früh am Marktplatz.",
        "Das Kind malt ein Haus mit einem roten Dach.",
        "Am Abend regnete es über der ganzen Stadt.",
        "Die Katze schläft gern auf dem warmen Ofen.",
        "Er liest jeden Tag die Zeitung beim Frühstück.",
        "Der Wind trägt den Duft von frischem Heu.",
        "Im Winter fahren viele Leute in die Berge.",
        "Die Glocken läuten laut am Sonntagmorgen.",
        "Sie hat das Fenster gestern neu gestrichen.",
        "Der Bäcker öffnet seinen Laden um sechs Uhr.",
        "Auf dem See schwimmen zwei weiße Schwäne.",
        "Das Konzert beginnt erst nach der Pause.",
        "Mein Bruder repariert das Fahrrad im Hof.",
    ],
    "it": [
        "Il treno per Roma parte alle otto in punto.",
        "La casa sul colle ha le finestre verdi.",
        "Domani andiamo al mare con i nostri amici.",
        "Il gatto dorme sulla sedia vicino al fuoco.",
        "La piazza era piena di gente e di musica.",
        "Ho comprato il pane fresco questa mattina.",
        "Le campane suonano a festa la domenica.",
        "Il vento muove piano le foglie degli ulivi.",
        "Mia sorella canta nel coro della chiesa.",
        "La strada per il paese è lunga e stretta.",
        "Il pescatore torna al porto con la barca.",
        "Questa sera la luna è grande e chiara.",
        "Il cuoco prepara una zuppa di verdure.",
        "I bambini giocano nel cortile della scuola.",
    ],
    "fr": [
        "Le petit bateau rentre au port avant la nuit.",
        "Nous avons mangé des fraises dans le jardin.",
        "La pluie tombe doucement sur les toits gris.",
        "Mon voisin joue du violon tous les soirs.",
        "Le marché ouvre très tôt le samedi matin.",
        "Il faut fermer la porte quand il fait froid.",
        "Les enfants chantent une chanson dans la cour.",
        "Le train de Paris arrive avec dix minutes de retard.",
        "Elle a trouvé une vieille lettre dans le grenier.",
        "Le vent du nord souffle sur la colline.",
    ],
    "es": [
        "El tren sale de la estación a las nueve.",
        "Mi abuela prepara sopa los domingos.",
        "La playa estaba llena de gente en agosto.",
        "El perro corre detrás de la pelota roja.",
        "Abrimos las ventanas para que entre el sol.",
        "Los músicos tocan en la plaza cada noche.",
        "El río baja muy lento en el verano.",
        "Compramos fruta fresca en el mercado.",
        "La biblioteca cierra a las seis de la tarde.",
        "Un pájaro canta en la rama del naranjo.",
    ],
    "pt": [
        "O barco chegou ao porto ao fim da tarde.",
        "A menina lê um livro debaixo da árvore.",
        "Amanhã vamos visitar os nossos avós.",
        "O café da esquina abre muito cedo.",
        "A chuva não parou durante toda a noite.",
    ],
    "nl": [
        "De fiets staat al de hele dag in de regen.",
        "We eten vanavond soep met vers brood.",
        "De molen draait langzaam in de wind.",
        "Mijn zus woont in een huis aan de gracht.",
        "Het concert begint om acht uur precies.",
    ],
    "sv": [
        "Båten seglar ut ur hamnen i gryningen.",
        "Vi plockar blåbär i skogen på sommaren.",
        "Tåget till staden går varje timme.",
        "Katten sover i solen på trappan.",
    ],
    "la": [
        "Gloria in excelsis Deo et in terra pax hominibus.",
        "Dominus vobiscum et cum spiritu tuo.",
        "Agnus Dei qui tollis peccata mundi.",
        "Sanctus sanctus sanctus Dominus Deus.",
        "Laudate Dominum omnes gentes.",
    ],
}

#: Syllables for wordless singing (scat, vocalise).
SCAT = ["la", "da", "na", "lu", "do", "ba", "mi", "o", "a", "ah", "oh", "loo", "dee", "ya", "ma", "no"]

_VOWELS = "aeiouyàáâäèéêëìíîïòóôöùúûüåæøœ"
_SYL = re.compile(rf"[^{_VOWELS}]*[{_VOWELS}]+(?:[^{_VOWELS}]+$)?", re.IGNORECASE)


def syllables(text: str) -> list[str]:
    """Crude orthographic syllabification: one syllable per vowel group, trailing consonants kept.

    >>> syllables("garden path")
    ['gar', 'den', 'path']
    """
    out: list[str] = []
    for word in re.findall(rf"[a-z{_VOWELS}ß']+", text.lower()):
        parts = _SYL.findall(word)
        if not parts:
            if out:
                out[-1] += word
            continue
        # move the leading consonant of each following part to make 'gar-den' from 'ga-rden'
        fixed: list[str] = []
        for i, p in enumerate(parts):
            if i + 1 < len(parts):
                nxt = parts[i + 1]
                lead = re.match(rf"[^{_VOWELS}]*", nxt).group()
                if len(lead) >= 2:
                    p = p + lead[0]
                    parts[i + 1] = nxt[1:]
            fixed.append(p)
        out.extend(fixed)
    return out


def vowel_of(syllable: str) -> str:
    """The vowel group of a syllable (what a melisma holds on), 'a' if there is none."""
    m = re.search(rf"[{_VOWELS}]+", syllable.lower())
    return m.group() if m else "a"
