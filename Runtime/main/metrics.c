/*
 * metrics.c: VQA answer normalisation and accuracy (metrics.h), character for character what the
 * official Python evaluation does, including its quirks: the period rule removes at most 32
 * periods (`periodStrip.sub("", text, re.UNICODE)` passes re.UNICODE = 32 as the count), and
 * contraction keys with capitals ("Im") never match lower-cased words.
 */
#include "metrics.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *const punctuation = ";/[]\"{}()=+\\_-><@`,?!";

static const char *const manual_map[][2] = {{"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"},   {"three", "3"}, {"four", "4"},
                                            {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"}};

static const char *const articles[] = {"a", "an", "the"};

static const char *const contractions[][2] = {
    {"aint", "ain't"}, {"arent", "aren't"}, {"cant", "can't"}, {"couldve", "could've"}, {"couldnt", "couldn't"},
    {"couldn'tve", "couldn't've"}, {"couldnt've", "couldn't've"}, {"didnt", "didn't"}, {"doesnt", "doesn't"}, {"dont", "don't"},
    {"hadnt", "hadn't"}, {"hadnt've", "hadn't've"}, {"hadn'tve", "hadn't've"}, {"hasnt", "hasn't"}, {"havent", "haven't"},
    {"hed", "he'd"}, {"hed've", "he'd've"}, {"he'dve", "he'd've"}, {"hes", "he's"}, {"howd", "how'd"}, {"howll", "how'll"},
    {"hows", "how's"}, {"Id've", "I'd've"}, {"I'dve", "I'd've"}, {"Im", "I'm"}, {"Ive", "I've"}, {"isnt", "isn't"},
    {"itd", "it'd"}, {"itd've", "it'd've"}, {"it'dve", "it'd've"}, {"itll", "it'll"}, {"let's", "let's"}, {"maam", "ma'am"},
    {"mightnt", "mightn't"}, {"mightnt've", "mightn't've"}, {"mightn'tve", "mightn't've"}, {"mightve", "might've"},
    {"mustnt", "mustn't"}, {"mustve", "must've"}, {"neednt", "needn't"}, {"notve", "not've"}, {"oclock", "o'clock"},
    {"oughtnt", "oughtn't"}, {"ow's'at", "'ow's'at"}, {"'ows'at", "'ow's'at"}, {"'ow'sat", "'ow's'at"}, {"shant", "shan't"},
    {"shed've", "she'd've"}, {"she'dve", "she'd've"}, {"she's", "she's"}, {"shouldve", "should've"}, {"shouldnt", "shouldn't"},
    {"shouldnt've", "shouldn't've"}, {"shouldn'tve", "shouldn't've"}, {"somebody'd", "somebodyd"}, {"somebodyd've", "somebody'd've"},
    {"somebody'dve", "somebody'd've"}, {"somebodyll", "somebody'll"}, {"somebodys", "somebody's"}, {"someoned", "someone'd"},
    {"someoned've", "someone'd've"}, {"someone'dve", "someone'd've"}, {"someonell", "someone'll"}, {"someones", "someone's"},
    {"somethingd", "something'd"}, {"somethingd've", "something'd've"}, {"something'dve", "something'd've"},
    {"somethingll", "something'll"}, {"thats", "that's"}, {"thered", "there'd"}, {"thered've", "there'd've"},
    {"there'dve", "there'd've"}, {"therere", "there're"}, {"theres", "there's"}, {"theyd", "they'd"}, {"theyd've", "they'd've"},
    {"they'dve", "they'd've"}, {"theyll", "they'll"}, {"theyre", "they're"}, {"theyve", "they've"}, {"twas", "'twas"},
    {"wasnt", "wasn't"}, {"wed've", "we'd've"}, {"we'dve", "we'd've"}, {"weve", "we've"}, {"werent", "weren't"},
    {"whatll", "what'll"}, {"whatre", "what're"}, {"whats", "what's"}, {"whatve", "what've"}, {"whens", "when's"},
    {"whered", "where'd"}, {"wheres", "where's"}, {"whereve", "where've"}, {"whod", "who'd"}, {"whod've", "who'd've"},
    {"who'dve", "who'd've"}, {"wholl", "who'll"}, {"whos", "who's"}, {"whove", "who've"}, {"whyll", "why'll"},
    {"whyre", "why're"}, {"whys", "why's"}, {"wont", "won't"}, {"wouldve", "would've"}, {"wouldnt", "wouldn't"},
    {"wouldnt've", "wouldn't've"}, {"wouldn'tve", "wouldn't've"}, {"yall", "y'all"}, {"yall'll", "y'all'll"},
    {"y'allll", "y'all'll"}, {"yall'd've", "y'all'd've"}, {"y'alld've", "y'all'd've"}, {"y'all'dve", "y'all'd've"},
    {"youd", "you'd"}, {"youd've", "you'd've"}, {"you'dve", "you'd've"}, {"youll", "you'll"}, {"youre", "you're"},
    {"youve", "you've"}};

static char *copy_of(const char *text) {
    size_t length = strlen(text);
    char *copy = malloc(length + 1);
    if (copy != NULL) memcpy(copy, text, length + 1);
    return copy;
}

/* re.search(r"(\d)(\,)(\d)", text) */
static bool has_digit_comma_digit(const char *text) {
    for (size_t i = 0; text[i] != '\0' && text[i + 1] != '\0' && text[i + 2] != '\0'; i++) {
        if (isdigit((unsigned char)text[i]) && text[i + 1] == ',' && isdigit((unsigned char)text[i + 2])) return true;
    }
    return false;
}

char *vqa_process_punctuation(const char *text) {
    char *out = copy_of(text);
    if (out == NULL) return NULL;
    bool comma_strip = has_digit_comma_digit(text);
    for (const char *p = punctuation; *p != '\0'; p++) {
        char before[3] = {*p, ' ', '\0'}, after[3] = {' ', *p, '\0'};
        bool remove = strstr(text, before) != NULL || strstr(text, after) != NULL || comma_strip;
        char *write = out;
        for (const char *read = out; *read != '\0'; read++) {
            if (*read != *p) {
                *write++ = *read;
            } else if (!remove) {
                *write++ = ' ';
            }
        }
        *write = '\0';
    }
    /* periodStrip: a '.' not followed by a digit, at most 32 of them. */
    int removed = 0;
    char *write = out;
    for (const char *read = out; *read != '\0'; read++) {
        if (*read == '.' && !isdigit((unsigned char)read[1]) && removed < 32) {
            removed++;
            continue;
        }
        *write++ = *read;
    }
    *write = '\0';
    return out;
}

char *vqa_process_digit_article(const char *text) {
    size_t length = strlen(text);
    /* Each word may grow through the maps; 16 bytes of room per input byte is more than enough. */
    char *out = malloc(length * 16 + 1);
    char *word = malloc(length + 1);
    if (out == NULL || word == NULL) {
        free(out);
        free(word);
        return NULL;
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < length;) {
        while (i < length && isspace((unsigned char)text[i])) i++;
        if (i == length) break;
        size_t n = 0;
        while (i < length && !isspace((unsigned char)text[i])) word[n++] = (char)tolower((unsigned char)text[i++]);
        word[n] = '\0';
        const char *mapped = word;
        for (size_t m = 0; m < sizeof manual_map / sizeof manual_map[0]; m++) {
            if (strcmp(word, manual_map[m][0]) == 0) mapped = manual_map[m][1];
        }
        bool article = false;
        for (size_t a = 0; a < sizeof articles / sizeof articles[0]; a++) article |= strcmp(mapped, articles[a]) == 0;
        if (article) continue;
        for (size_t c = 0; c < sizeof contractions / sizeof contractions[0]; c++) {
            if (strcmp(mapped, contractions[c][0]) == 0) {
                mapped = contractions[c][1];
                break;
            }
        }
        size_t mapped_length = strlen(mapped);
        if (used > 0) out[used++] = ' ';
        memcpy(out + used, mapped, mapped_length + 1);
        used += mapped_length;
    }
    free(word);
    return out;
}

char *vqa_normalize_prediction(const char *prediction) {
    char *text = copy_of(prediction);
    if (text == NULL) return NULL;
    for (char *c = text; *c != '\0'; c++) {
        if (*c == '\n' || *c == '\t') *c = ' ';
    }
    /* str.strip(): leading and trailing whitespace */
    char *start = text;
    while (*start != '\0' && isspace((unsigned char)*start)) start++;
    size_t length = strlen(start);
    while (length > 0 && isspace((unsigned char)start[length - 1])) start[--length] = '\0';
    char *punctuated = vqa_process_punctuation(start);
    free(text);
    if (punctuated == NULL) return NULL;
    char *normalized = vqa_process_digit_article(punctuated);
    free(punctuated);
    return normalized;
}

double vqa_accuracy(const char *prediction, const char *const *answers, size_t count) {
    char *predicted = vqa_normalize_prediction(prediction);
    char **truth = calloc(count + 1, sizeof *truth);
    double result = -1;
    if (predicted == NULL || truth == NULL || count == 0) goto done;
    bool all_equal = true;
    for (size_t i = 1; i < count; i++) all_equal &= strcmp(answers[i], answers[0]) == 0;
    for (size_t i = 0; i < count; i++) {
        truth[i] = all_equal ? copy_of(answers[i]) : vqa_process_punctuation(answers[i]);
        if (truth[i] == NULL) goto done;
    }
    double total = 0;
    for (size_t left_out = 0; left_out < count; left_out++) {
        size_t matches = 0;
        for (size_t i = 0; i < count; i++) matches += i != left_out && strcmp(truth[i], predicted) == 0;
        total += matches / 3.0 < 1 ? matches / 3.0 : 1;
    }
    result = total / (double)count;
done:
    if (truth != NULL) {
        for (size_t i = 0; i < count; i++) free(truth[i]);
    }
    free(truth);
    free(predicted);
    return result;
}
