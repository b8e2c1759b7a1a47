#include "facenet/kernels/pool.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "facenet/kernels/reference/pool.hpp"
#include "testing.hpp"

namespace k = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::kernels::pool2d_params;
using facenet::testing::check_gradient;
using facenet::testing::dot;
using facenet::testing::max_abs_diff;
using facenet::testing::random_tensor;

namespace {

// Expected values below come from PyTorch 1.13 (F.avg_pool2d / F.max_pool2d / F.lp_pool2d, float64)
// on x = 2 * sin(0.37 * i + 0.1) reshaped to [1, 2, 7, 8].
Tensor<double> fixture_input() {
  Tensor<double> x({1, 2, 7, 8});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 2 * std::sin(0.37 * static_cast<double>(i) + 0.1);
  return x;
}

struct avg_case {
  int k, s, pad;
  bool ceil, include_pad;
  int oh, ow;
  std::vector<double> y;
};
struct max_case {
  int k, s, pad;
  bool ceil;
  int oh, ow;
  std::vector<double> y, idx;
};
struct lp_case {
  int k, s;
  bool ceil;
  int oh, ow;
  std::vector<double> y;
};
struct size_case {
  int in, k, s, pad;
  bool ceil;
  int out;
};

template <class U>
void expect_values(const Tensor<U>& t, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(want.size())) << what;
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(static_cast<double>(t.data()[i]), want[i], 1e-12) << what << " at " << i;
}

TEST(pool_pytorch, output_sizes) {
  const size_case cases[] = {
    {7, 3, 2, 0, true, 3},
    {8, 3, 2, 1, true, 5},
    {6, 3, 2, 0, true, 3},
    {5, 2, 2, 0, true, 3},
    {77, 3, 2, 0, false, 38},
    {77, 3, 2, 0, true, 38},
    {10, 3, 3, 1, true, 4},
    {9, 4, 3, 2, true, 4},
  };
  for (const auto& c : cases)
    EXPECT_EQ(k::pool2d_output_size(c.in, c.k, c.pad, c.pad, c.s, c.ceil), c.out)
        << "in " << c.in << " k " << c.k << " s " << c.s << " pad " << c.pad << " ceil " << c.ceil;
}

TEST(pool_pytorch, avg_pool2d) {
  const avg_case cases[] = {
    {3, 2, 0, false, true, 3, 3, {0.17510823533473049, 0.52729531842122768, 0.60367379230403539, -0.04599456490175427, 0.38000336971174442, 0.6072356463885914, -0.26109691199758861, 0.18313616318397072, 0.53157750895305544, 0.51223835680178231, 0.14798164243720291, -0.29367877638370493, 0.60015516850570505, 0.35063048950694409, -0.082295984040018089, 0.60977570817335758, 0.50753606611714785, 0.13982314632427217}},
    {3, 2, 1, true, true, 4, 5, {0.077732475833267339, 0.084529739835362383, 0.0094087132429035627, -0.070633662019388685, -0.051772166156961251, 0.032999197039525655, -0.28255597627639384, -0.57748478227328504, -0.57035273343085169, -0.23454892374497874, 0.18048071901790566, -0.06980610356271072, -0.46400151390180649, -0.61549495487611583, -0.29781593860787398, -0.059884159223497622, -0.11398951328099748, -0.096483776331595494, -0.02851095721576348, 0.0072629833229469849, -0.037552725920469071, -0.10007041253879062, -0.11270764117926974, -0.06639168614014429, -0.014529486442962591, -0.41217576508520248, -0.43920672356838186, -0.033434493473110588, 0.38982607915449852, 0.2805369300203906, -0.4182583537032436, -0.56382315802145788, -0.24964458431560629, 0.19511380527307265, 0.20581763928555444, -0.031876995382699586, 0.016210557118671944, 0.089040379643457485, 0.11529648452940641, 0.055191907985443399}},
    {3, 2, 1, true, false, 4, 5, {0.17489807062485152, 0.12679460975304357, 0.014113069864355343, -0.10595049302908303, -0.15531649847088375, 0.049498795559288482, -0.28255597627639384, -0.57748478227328504, -0.57035273343085169, -0.46909784748995748, 0.27072107852685851, -0.06980610356271072, -0.46400151390180649, -0.61549495487611583, -0.59563187721574795, -0.13473935825286965, -0.17098426992149621, -0.14472566449739324, -0.04276643582364522, 0.021788949968840954, -0.084493633321055417, -0.15010561880818593, -0.1690614617689046, -0.099587529210216449, -0.043588459328887774, -0.61826364762780373, -0.43920672356838186, -0.033434493473110588, 0.38982607915449852, 0.56107386004078119, -0.6273875305548654, -0.56382315802145788, -0.24964458431560629, 0.19511380527307265, 0.41163527857110888, -0.071723239611074074, 0.024315835678007918, 0.13356056946518621, 0.17294472679410963, 0.16557572395633019}},
    {2, 2, 0, true, true, 4, 4, {0.17489807062485152, 0.10596162820826244, -0.018399408897659453, -0.13313639814852474, 0.1757099737270294, 0.14996985011482666, 0.045786064407347338, -0.082346712129238719, 0.15359874523863518, 0.17441299819045805, 0.10399828555619151, -0.02081407010039904, -1.4164559121898062, -0.12682058133483703, 1.2291498883586298, 1.9421976743725033, -0.084493633321055417, -0.16822575975177931, -0.16396523536911495, -0.073940582337799376, -0.023224864938145851, -0.13631728954086747, -0.17810719973619255, -0.12673584463622883, 0.041073820437282749, -0.086624859205589433, -0.16901329029269141, -0.1629971425715892, 1.7205687658032613, 1.9117971583583631, 1.10303541842918, -0.2826832070081971}},
    {3, 3, 1, true, false, 3, 3, {0.17489807062485152, 0.075567707137135273, -0.10595049302908303, -0.16278658591757925, 0.38000336971174442, 0.60283608926100629, -0.13473935825286965, -0.16931281481059157, -0.04276643582364522, -0.084493633321055417, -0.17116685576224597, -0.099587529210216449, 0.63323771867456113, 0.35063048950694409, -0.29735932856987735, -0.071723239611074074, 0.084667904404632968, 0.17294472679410963}},
  };
  const auto x = fixture_input();
  for (const auto& c : cases) {
    const auto p = pool2d_params::square(c.k, c.s, c.pad, c.ceil, c.include_pad);
    Tensor<double> y;
    k::avg_pool2d_forward(x, p, y);
    ASSERT_EQ(y.shape(), (shape{1, 2, c.oh, c.ow}));
    expect_values(y, c.y, "avg k" + std::to_string(c.k) + " pad" + std::to_string(c.pad));
  }
}

TEST(pool_pytorch, max_pool2d) {
  const max_case cases[] = {
    {3, 2, 0, false, 3, 3, {1.4892862399417186, 1.9999152929974802, 1.9999152929974802, 0.91790297275538058, 1.8759999535494778, 1.999743417436278, 1.445762699023952, 1.5073415702835617, 1.9994786740737063, 1.9986706374352274, 1.4267939490446724, 1.5251169009592054, 1.9986706374352274, 1.8316192057816381, 0.96599270441139329, 1.9981273816844278, 1.9974913331807305, 1.4075601617060127}, {2, 4, 4, 18, 20, 21, 40, 36, 38, 16, 18, 14, 16, 34, 30, 33, 50, 52}},
    {3, 2, 1, true, 4, 5, {0.90577257075813655, 1.8712320031067717, 1.9999152929974802, 1.8579194300077384, 0.87279816432025259, 0.86051490942754061, 1.4983486966633788, 1.999743417436278, 1.999743417436278, 1.4551465819429195, 1.445762699023952, 0.92999074746843935, 1.8806807828197682, 1.9994786740737063, 1.8476565067702551, 1.445762699023952, 0.84819169234418179, 1.5162644431744901, 1.9991210752044088, 1.9991210752044088, 1.84239621764022, 1.4363116750897975, 0.95403617162949828, 1.8897802123909015, 1.8897802123909015, 1.9986706374352274, 1.8370503678905128, 0.95403617162949828, 1.8897802123909015, 1.8897802123909015, 1.9981273816844278, 1.9981273816844278, 1.4172099628904204, 1.5338985325308234, 1.5338985325308234, 1.8985286015349065, 1.9974913331807305, 1.8261029835359956, 0.97790437662877006, 0.97790437662877006}, {1, 3, 4, 5, 7, 24, 19, 21, 21, 23, 40, 35, 37, 38, 39, 40, 41, 53, 55, 55, 0, 1, 13, 15, 15, 16, 17, 13, 15, 15, 33, 33, 35, 31, 31, 49, 50, 51, 47, 47}},
    {3, 2, 1, true, 4, 5, {0.90577257075813655, 1.8712320031067717, 1.9999152929974802, 1.8579194300077384, 0.87279816432025259, 0.86051490942754061, 1.4983486966633788, 1.999743417436278, 1.999743417436278, 1.4551465819429195, 1.445762699023952, 0.92999074746843935, 1.8806807828197682, 1.9994786740737063, 1.8476565067702551, 1.445762699023952, 0.84819169234418179, 1.5162644431744901, 1.9991210752044088, 1.9991210752044088, 1.84239621764022, 1.4363116750897975, 0.95403617162949828, 1.8897802123909015, 1.8897802123909015, 1.9986706374352274, 1.8370503678905128, 0.95403617162949828, 1.8897802123909015, 1.8897802123909015, 1.9981273816844278, 1.9981273816844278, 1.4172099628904204, 1.5338985325308234, 1.5338985325308234, 1.8985286015349065, 1.9974913331807305, 1.8261029835359956, 0.97790437662877006, 0.97790437662877006}, {1, 3, 4, 5, 7, 24, 19, 21, 21, 23, 40, 35, 37, 38, 39, 40, 41, 53, 55, 55, 0, 1, 13, 15, 15, 16, 17, 13, 15, 15, 33, 33, 35, 31, 31, 49, 50, 51, 47, 47}},
    {2, 2, 0, true, 4, 4, {0.90577257075813655, 1.8712320031067717, 1.9999152929974802, 1.4644628880605028, 0.86051490942754061, 1.4983486966633788, 1.999743417436278, 1.8528309909935323, 1.445762699023952, 0.92999074746843935, 1.8806807828197682, 1.9994786740737063, -1.1613473547295929, 0.2403061608035677, 1.5162644431744901, 1.9991210752044088, 1.84239621764022, 0.83582908535863465, 0.95403617162949828, 1.8897802123909015, 1.9986706374352274, 1.4267939490446724, 0.26734429542650917, 1.5338985325308234, 1.9981273816844278, 1.8316192057816381, 0.8109879999544749, 0.97790437662877006, 1.8985286015349065, 1.9974913331807305, 1.4075601617060127, 0.081386514699715515}, {1, 3, 4, 6, 24, 19, 21, 22, 40, 35, 37, 38, 49, 51, 53, 55, 0, 2, 13, 15, 16, 18, 29, 31, 33, 34, 36, 47, 49, 50, 52, 54}},
  };
  const auto x = fixture_input();
  for (const auto& c : cases) {
    Tensor<double> y;
    Tensor<std::int32_t> idx;
    k::max_pool2d_forward(x, pool2d_params::square(c.k, c.s, c.pad, c.ceil), y, idx);
    ASSERT_EQ(y.shape(), (shape{1, 2, c.oh, c.ow}));
    expect_values(y, c.y, "max values k" + std::to_string(c.k));
    expect_values(idx, c.idx, "max indices k" + std::to_string(c.k));
  }
}

TEST(pool_pytorch, l2_pool2d_is_lp_pool2d) {
  const lp_case cases[] = {
    {3, 2, true, 3, 4, {2.4667072631608749, 4.9638809255893381, 5.5784850179500189, 4.3648426136208887, 1.9857847150592496, 3.8231025016728464, 5.6074070616811564, 5.4244461916332893, 2.9829725011718513, 2.5100531556762551, 4.9980221657700383, 5.8335240495585854, 4.8441780307757201, 2.3296445301545314, 3.2021796825402427, 5.1153060034979427, 5.5499343710166489, 3.606433669742545, 2.0718750607884457, 3.8635042500095791, 5.6280447089711263, 4.8069089076307678, 2.2915320352421626, 2.288767513132647}},
    {2, 1, false, 6, 7, {1.1002059539145539, 2.2044204937036249, 3.1860918238000222, 3.7838722909488869, 3.8961069069566325, 3.5051677034299979, 2.6740979360638573, 0.81630523774314734, 1.6459290200490899, 2.7421329435205433, 3.546962611602368, 3.9046732006874878, 3.7578771782786804, 3.1296654520315594, 1.0387507489056167, 1.1175635715931442, 2.2248860865260496, 3.2010260665203258, 3.7905041074629988, 3.8933856194168031, 3.4935170610046535, 1.5474383930538218, 0.81826454005773419, 1.6669825599400105, 2.760272565511225, 3.5578941304891281, 3.9065803895042128, 3.7504635359499714, 2.1074660816224084, 1.0229835492541697, 1.1352081699193219, 2.2452912997498506, 3.2158260728881531, 3.7969685770937227, 3.8904915368179127, 2.6367621021594805, 1.526626469503205, 0.82104881525104401, 1.6880607931628944, 2.7783064888476638, 3.5686709218703929, 3.9083140895744624, 3.4697629977335955, 2.6179485014613473, 1.5058765915393266, 0.82464919319840457, 1.7091589631727, 2.7962334409437219, 3.5792923904271206, 3.7351410389407502, 3.0826202970152132, 2.0658872614323256, 0.99265330318841039, 1.1712935151148129, 2.2859122034768262, 3.2450198462948601, 3.8841856047757894, 3.4576609094002397, 2.5990396825113473, 1.4851952947593989, 0.82905437778947744, 1.7302724932531675, 2.8140521678156856, 3.9112606683508533, 3.7272330066179871, 3.0666832533905501, 2.0450331282944618, 0.97813340151090367, 1.1897036163691188, 2.306123819265308, 3.8153545059311753, 3.8807740873591139, 3.4454096883375058, 2.5800371029683493, 1.4645894073360342, 0.83425080897472925, 1.7513969768548865, 3.6000670262314287, 3.9124733923275388, 3.7191610154975976, 3.0506201915361748, 2.0241393247914448, 0.96407347119065034, 1.208339368475474}},
  };
  const auto x = fixture_input();
  for (const auto& c : cases) {
    Tensor<double> y;
    k::l2_pool2d_forward(x, pool2d_params::square(c.k, c.s, 0, c.ceil), y);
    ASSERT_EQ(y.shape(), (shape{1, 2, c.oh, c.ow}));
    expect_values(y, c.y, "l2 k" + std::to_string(c.k));
  }
}

// Square, asymmetric (TF "SAME"-like), ceil-mode and non-square parameter sets.
std::vector<pool2d_params> param_sets() {
  std::vector<pool2d_params> v = {pool2d_params::square(3, 2), pool2d_params::square(3, 2, 1, true),
                                  pool2d_params::square(3, 1, 1), pool2d_params::square(2, 2, 0, true),
                                  pool2d_params::square(3, 2, 1, true, false), pool2d_params::square(5, 3, 2, true, false)};
  v.push_back({3, 2, 2, 1, 0, 1, 1, 0, false, true});
  v.push_back({3, 2, 2, 1, 0, 1, 1, 0, true, false});
  v.push_back({1, 3, 1, 2, 0, 0, 1, 1, true, true});
  return v;
}
// {3, 9, 37, 41} is threaded; {1, 2, 19, 70} has rows long enough for pooling by output row.
const shape pool_shapes[] = {{1, 3, 7, 9}, {3, 5, 11, 13}, {1, 17, 23, 21}, {2, 3, 5, 5}, {3, 9, 37, 41}, {1, 2, 19, 70}};

template <class T>
class pool : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(pool, scalar_types);

template <class T>
double pool_tol() {
  return std::is_same<T, float>::value ? 2e-6 : 1e-14;
}

TYPED_TEST(pool, matches_reference) {
  using T = TypeParam;
  for (const auto& s : pool_shapes)
    for (const auto& p : param_sets()) {
      const std::string what = s.str() + " k" + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) +
                               " s" + std::to_string(p.stride_h) + " ceil" + std::to_string(p.ceil_mode) + " incl" +
                               std::to_string(p.count_include_pad) + " pads" + std::to_string(p.pad_top) +
                               std::to_string(p.pad_bottom) + std::to_string(p.pad_left) + std::to_string(p.pad_right);
      const auto x = random_tensor<T>(s, 1);
      Tensor<T> y, y_ref, dx, dx_ref;
      Tensor<std::int32_t> idx, idx_ref;
      k::max_pool2d_forward(x, p, y, idx);
      ref::max_pool2d_forward(x, p, y_ref, idx_ref);
      EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << what;
      EXPECT_EQ(max_abs_diff(idx, idx_ref), 0.0) << what;
      Tensor<T> y_plain;
      k::max_pool2d_forward(x, p, y_plain);
      EXPECT_EQ(max_abs_diff(y_plain, y_ref), 0.0) << what << " (no indices)";
      const auto dy = random_tensor<T>(y.shape(), 2);
      k::max_pool2d_backward(dy, idx, x.shape(), p, dx);
      ref::max_pool2d_backward(dy, idx_ref, x.shape(), p, dx_ref);
      EXPECT_LE(max_abs_diff(dx, dx_ref), pool_tol<T>()) << what;

      k::avg_pool2d_forward(x, p, y);
      ref::avg_pool2d_forward(x, p, y_ref);
      EXPECT_LE(max_abs_diff(y, y_ref), pool_tol<T>()) << what;
      k::avg_pool2d_backward(dy, x.shape(), p, dx);
      ref::avg_pool2d_backward(dy, x.shape(), p, dx_ref);
      EXPECT_LE(max_abs_diff(dx, dx_ref), pool_tol<T>()) << what;

      k::l2_pool2d_forward(x, p, y);
      ref::l2_pool2d_forward(x, p, y_ref);
      EXPECT_LE(max_abs_diff(y, y_ref), 2 * pool_tol<T>()) << what;
      k::l2_pool2d_backward(dy, x, y, p, dx);
      ref::l2_pool2d_backward(dy, x, y_ref, p, dx_ref);
      EXPECT_LE(max_abs_diff(dx, dx_ref), 20 * pool_tol<T>()) << what;
    }
}

// Ties and NaNs decide which element gets the gradient: the SIMD indexed path must choose the
// reference's (first maximum in row-major order, last NaN), not just an equal value.
TYPED_TEST(pool, max_indices_with_ties_and_nans_match_reference) {
  using T = TypeParam;
  for (const auto& s : pool_shapes)
    for (const auto& p : param_sets()) {
      Tensor<T> x(s);
      std::uint32_t state = 12345;
      for (std::int64_t i = 0; i < x.numel(); ++i) {
        state = state * 1664525u + 1013904223u;
        const std::uint32_t r = state >> 24;  // 0..255
        x.data()[i] = r < 8 ? std::numeric_limits<T>::quiet_NaN() : r < 16 ? -std::numeric_limits<T>::infinity()
                                                                            : static_cast<T>(r % 4);
      }
      Tensor<T> y, y_ref;
      Tensor<std::int32_t> idx, idx_ref;
      k::max_pool2d_forward(x, p, y, idx);
      ref::max_pool2d_forward(x, p, y_ref, idx_ref);
      ASSERT_EQ(idx.shape(), idx_ref.shape());
      for (std::int64_t i = 0; i < idx.numel(); ++i) {
        ASSERT_EQ(idx.data()[i], idx_ref.data()[i]) << s.str() << " k" << p.kernel_h << "x" << p.kernel_w << " s"
                                                    << p.stride_h << "x" << p.stride_w << " output " << i;
        const T a = y.data()[i], b = y_ref.data()[i];
        ASSERT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << "output " << i << ": " << a << " vs " << b;
      }
    }
}

// Windows of only -inf keep the reference's first element (nothing compares greater), padded or not.
TYPED_TEST(pool, max_indices_of_all_minus_infinity_windows_match_reference) {
  using T = TypeParam;
  for (const auto& s : pool_shapes)
    for (const auto& p : param_sets()) {
      Tensor<T> x(s);
      for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = i % 97 == 5 ? T(1) : -std::numeric_limits<T>::infinity();
      Tensor<T> y, y_ref;
      Tensor<std::int32_t> idx, idx_ref;
      k::max_pool2d_forward(x, p, y, idx);
      ref::max_pool2d_forward(x, p, y_ref, idx_ref);
      EXPECT_EQ(max_abs_diff(idx, idx_ref), 0.0) << s.str() << " k" << p.kernel_h << "x" << p.kernel_w;
      for (std::int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data()[i], y_ref.data()[i]) << "output " << i;
    }
}

TYPED_TEST(pool, global_avg_matches_reference) {
  using T = TypeParam;
  for (const auto& s : pool_shapes) {
    const auto x = random_tensor<T>(s, 3);
    Tensor<T> y, y_ref, dx, dx_ref;
    k::global_avg_pool_forward(x, y);
    ref::global_avg_pool_forward(x, y_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), pool_tol<T>()) << s.str();
    const auto dy = random_tensor<T>(y.shape(), 4);
    k::global_avg_pool_backward(dy, x.shape(), dx);
    ref::global_avg_pool_backward(dy, x.shape(), dx_ref);
    EXPECT_LE(max_abs_diff(dx, dx_ref), pool_tol<T>()) << s.str();
  }
}

TEST(pool_values, max_pool_prefers_nan_and_ignores_padding) {
  Tensor<float> x = Tensor<float>::full(shape{1, 1, 3, 3}, -5.0f), y;
  Tensor<std::int32_t> idx;
  k::max_pool2d_forward(x, pool2d_params::square(3, 1, 1), y, idx);
  EXPECT_EQ(y(0, 0, 0, 0), -5.0f);  // padding is -inf, not 0
  x(0, 0, 1, 1) = NAN;
  k::max_pool2d_forward(x, pool2d_params::square(3, 1, 1), y, idx);
  EXPECT_TRUE(std::isnan(y(0, 0, 0, 0)));
  EXPECT_EQ(idx(0, 0, 0, 0), 4);
  Tensor<float> y_plain;
  k::max_pool2d_forward(x, pool2d_params::square(3, 1, 1), y_plain);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < 3; ++j) EXPECT_TRUE(std::isnan(y_plain(0, 0, i, j))) << i << "," << j;
  // A NaN before the maximum in the window must survive the larger value after it.
  Tensor<float> row({1, 1, 1, 3}), y_row;
  row(0, 0, 0, 0) = NAN;
  row(0, 0, 0, 1) = 1.0f;
  row(0, 0, 0, 2) = 2.0f;
  k::max_pool2d_forward(row, pool2d_params{1, 3, 1, 1, 0, 0, 0, 0, false, true}, y_row);
  EXPECT_TRUE(std::isnan(y_row(0, 0, 0, 0)));
}

// Gradient checks run in double; x for max pooling is a permutation of spaced values (no ties).
TEST(pool_grad, max_avg_l2_global) {
  const shape s{2, 3, 9, 7};
  auto x = random_tensor<double>(s, 5, 0.2, 1.0);  // away from 0 so the L2 sqrt is smooth
  std::vector<double> distinct(static_cast<std::size_t>(s.numel()));
  for (std::size_t i = 0; i < distinct.size(); ++i) distinct[i] = 0.01 * static_cast<double>(i);
  std::mt19937 rng(6);
  std::shuffle(distinct.begin(), distinct.end(), rng);
  auto xm = Tensor<double>(s);
  std::copy(distinct.begin(), distinct.end(), xm.begin());
  for (const auto& p : param_sets()) {
    const std::string what = "k" + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " ceil" +
                             std::to_string(p.ceil_mode) + " incl" + std::to_string(p.count_include_pad);
    const shape ys = k::pool2d_output_shape(s, p);
    const auto r = random_tensor<double>(ys, 7);
    Tensor<double> y, dx;
    Tensor<std::int32_t> idx;
    k::max_pool2d_forward(xm, p, y, idx);
    k::max_pool2d_backward(r, idx, s, p, dx);
    check_gradient(xm, dx, [&] { Tensor<double> t; Tensor<std::int32_t> i; k::max_pool2d_forward(xm, p, t, i); return dot(t, r); },
                   "max_pool " + what);
    k::avg_pool2d_backward(r, s, p, dx);
    check_gradient(x, dx, [&] { Tensor<double> t; k::avg_pool2d_forward(x, p, t); return dot(t, r); }, "avg_pool " + what);
    k::l2_pool2d_forward(x, p, y);
    k::l2_pool2d_backward(r, x, y, p, dx);
    check_gradient(x, dx, [&] { Tensor<double> t; k::l2_pool2d_forward(x, p, t); return dot(t, r); }, "l2_pool " + what);
  }
  const auto r = random_tensor<double>(shape{2, 3, 1, 1}, 8);
  Tensor<double> dx;
  k::global_avg_pool_backward(r, s, dx);
  check_gradient(x, dx, [&] { Tensor<double> t; k::global_avg_pool_forward(x, t); return dot(t, r); }, "global_avg");
}

TEST(pool_errors, bad_input_throws) {
  Tensor<float> x({1, 2, 5, 5}), y, dx;
  Tensor<std::int32_t> idx;
  EXPECT_THROW(k::max_pool2d_forward(x, pool2d_params::square(0, 1), y, idx), facenet::argument_error);
  EXPECT_THROW(k::max_pool2d_forward(x, pool2d_params::square(3, 0), y, idx), facenet::argument_error);
  EXPECT_THROW(k::avg_pool2d_forward(x, pool2d_params::square(3, 1, 3), y), facenet::argument_error);
  EXPECT_THROW(k::avg_pool2d_forward(x, pool2d_params::square(7, 1), y), facenet::shape_error);
  EXPECT_THROW(k::avg_pool2d_forward(Tensor<float>({2, 5, 5}), pool2d_params::square(3, 1), y), facenet::shape_error);
  EXPECT_THROW(k::avg_pool2d_backward(Tensor<float>({1, 2, 4, 4}), x.shape(), pool2d_params::square(3, 2), dx),
               facenet::shape_error);
  k::max_pool2d_forward(x, pool2d_params::square(3, 2), y, idx);
  idx.data()[1] = 99;
  EXPECT_THROW(k::max_pool2d_backward(y, idx, x.shape(), pool2d_params::square(3, 2), dx), facenet::argument_error);
  EXPECT_THROW(k::global_avg_pool_backward(Tensor<float>({1, 3, 1, 1}), x.shape(), dx), facenet::shape_error);
}

}  // namespace
